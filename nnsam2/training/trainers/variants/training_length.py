"""Schedule variants of every nnsam2 trainer, one explicit class per name.

nnU-Net finds trainers by class name (training and inference), so each name below is a class a
reader can grep for. ``X_Nepochs`` is trainer X with N epochs of nnU-Net's 250 iterations.
A test checks that every method trainer has every schedule.
"""
from nnsam2.training.trainers.method_trainers import (
    SAM2DualAdapterTrainer, SAM2DualAdapterTrainer_LW, SAM2DualAdapterTrainer_LWWide,
    SAM2VanillaTrainer, SAM2LoRATrainer, SAM2DualAdapterTrainer_FullDecoder,
    SAM2DualAdapterTrainer_LW_FullDecoder, SAM2VanillaTrainer_FullDecoder)
from nnsam2.training.trainers.interactive import (
    SAM2DualAdapterTrainer_Interactive, SAM2DualAdapterTrainer_LW_Interactive,
    SAM2LoRATrainer_Interactive)

SCHEDULES = (1, 5, 10, 50, 100, 250, 500)


# SAM2DualAdapterTrainer
class SAM2DualAdapterTrainer_1epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_5epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_10epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_50epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_100epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_250epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_500epochs(SAM2DualAdapterTrainer): sam2_num_epochs = 500


# SAM2DualAdapterTrainer_LW
class SAM2DualAdapterTrainer_LW_1epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_LW_5epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_LW_10epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_LW_50epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_LW_100epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_LW_250epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_LW_500epochs(SAM2DualAdapterTrainer_LW): sam2_num_epochs = 500


# SAM2DualAdapterTrainer_LWWide
class SAM2DualAdapterTrainer_LWWide_1epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_LWWide_5epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_LWWide_10epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_LWWide_50epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_LWWide_100epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_LWWide_250epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_LWWide_500epochs(SAM2DualAdapterTrainer_LWWide): sam2_num_epochs = 500


# SAM2VanillaTrainer
class SAM2VanillaTrainer_1epochs(SAM2VanillaTrainer): sam2_num_epochs = 1
class SAM2VanillaTrainer_5epochs(SAM2VanillaTrainer): sam2_num_epochs = 5
class SAM2VanillaTrainer_10epochs(SAM2VanillaTrainer): sam2_num_epochs = 10
class SAM2VanillaTrainer_50epochs(SAM2VanillaTrainer): sam2_num_epochs = 50
class SAM2VanillaTrainer_100epochs(SAM2VanillaTrainer): sam2_num_epochs = 100
class SAM2VanillaTrainer_250epochs(SAM2VanillaTrainer): sam2_num_epochs = 250
class SAM2VanillaTrainer_500epochs(SAM2VanillaTrainer): sam2_num_epochs = 500


# SAM2LoRATrainer
class SAM2LoRATrainer_1epochs(SAM2LoRATrainer): sam2_num_epochs = 1
class SAM2LoRATrainer_5epochs(SAM2LoRATrainer): sam2_num_epochs = 5
class SAM2LoRATrainer_10epochs(SAM2LoRATrainer): sam2_num_epochs = 10
class SAM2LoRATrainer_50epochs(SAM2LoRATrainer): sam2_num_epochs = 50
class SAM2LoRATrainer_100epochs(SAM2LoRATrainer): sam2_num_epochs = 100
class SAM2LoRATrainer_250epochs(SAM2LoRATrainer): sam2_num_epochs = 250
class SAM2LoRATrainer_500epochs(SAM2LoRATrainer): sam2_num_epochs = 500


# SAM2DualAdapterTrainer_FullDecoder
class SAM2DualAdapterTrainer_FullDecoder_1epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_FullDecoder_5epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_FullDecoder_10epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_FullDecoder_50epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_FullDecoder_100epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_FullDecoder_250epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_FullDecoder_500epochs(SAM2DualAdapterTrainer_FullDecoder): sam2_num_epochs = 500


# SAM2DualAdapterTrainer_LW_FullDecoder
class SAM2DualAdapterTrainer_LW_FullDecoder_1epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_LW_FullDecoder_5epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_LW_FullDecoder_10epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_LW_FullDecoder_50epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_LW_FullDecoder_100epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_LW_FullDecoder_250epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_LW_FullDecoder_500epochs(SAM2DualAdapterTrainer_LW_FullDecoder): sam2_num_epochs = 500


# SAM2VanillaTrainer_FullDecoder
class SAM2VanillaTrainer_FullDecoder_1epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 1
class SAM2VanillaTrainer_FullDecoder_5epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 5
class SAM2VanillaTrainer_FullDecoder_10epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 10
class SAM2VanillaTrainer_FullDecoder_50epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 50
class SAM2VanillaTrainer_FullDecoder_100epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 100
class SAM2VanillaTrainer_FullDecoder_250epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 250
class SAM2VanillaTrainer_FullDecoder_500epochs(SAM2VanillaTrainer_FullDecoder): sam2_num_epochs = 500


__all__ = sorted(name for name in dict(globals()) if name.endswith("epochs"))


# SAM2DualAdapterTrainer_Interactive
class SAM2DualAdapterTrainer_Interactive_1epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_Interactive_5epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_Interactive_10epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_Interactive_50epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_Interactive_100epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_Interactive_250epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_Interactive_500epochs(SAM2DualAdapterTrainer_Interactive): sam2_num_epochs = 500


# SAM2DualAdapterTrainer_LW_Interactive
class SAM2DualAdapterTrainer_LW_Interactive_1epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 1
class SAM2DualAdapterTrainer_LW_Interactive_5epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 5
class SAM2DualAdapterTrainer_LW_Interactive_10epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 10
class SAM2DualAdapterTrainer_LW_Interactive_50epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 50
class SAM2DualAdapterTrainer_LW_Interactive_100epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 100
class SAM2DualAdapterTrainer_LW_Interactive_250epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 250
class SAM2DualAdapterTrainer_LW_Interactive_500epochs(SAM2DualAdapterTrainer_LW_Interactive): sam2_num_epochs = 500


# SAM2LoRATrainer_Interactive
class SAM2LoRATrainer_Interactive_1epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 1
class SAM2LoRATrainer_Interactive_5epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 5
class SAM2LoRATrainer_Interactive_10epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 10
class SAM2LoRATrainer_Interactive_50epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 50
class SAM2LoRATrainer_Interactive_100epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 100
class SAM2LoRATrainer_Interactive_250epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 250
class SAM2LoRATrainer_Interactive_500epochs(SAM2LoRATrainer_Interactive): sam2_num_epochs = 500
