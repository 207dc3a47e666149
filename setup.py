from setuptools import find_packages, setup

setup(
    name="nnsam2",
    version="0.1.0",
    description="nnU-Net v2 self-configuring biomedical segmentation with a prompt-free, "
                "adapter-tuned SAM2 (PEG + High-Performance / Lightweight adapters, LoRA)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nnsam2", "nnsam2.*", "dataset_conversion"]),
    package_data={"nnsam2.model_report": ["templates/*.j2"]},
    install_requires=[
        "torch>=2.5.1",
        "torchvision>=0.20",
        "sam2==1.1.0",  # build with SAM2_BUILD_CUDA=0
        "nnunetv2==2.8.1",
        "batchgenerators>=0.25",
        "SimpleITK>=2.2",
        "nibabel>=5",
        "acvl-utils>=0.2",
        "scikit-image>=0.21",
        "tifffile",
        "pillow",
        "matplotlib",
        "tqdm",
        "jinja2>=3",
    ],
    extras_require={
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],  # nnsam2_export
        "sam": ["segment-anything"],  # the SAM ViT-B reference row of nnsam2_benchmark
        "test": ["pytest>=7", "pytest-xdist>=3", "onnx>=1.15", "onnxruntime>=1.17"],
    },
    entry_points={
        "console_scripts": [
            "nnsam2_plan_and_preprocess = nnsam2.cli.plan_and_preprocess:main",
            "nnsam2_train = nnsam2.cli.train:main",
            "nnsam2_predict = nnsam2.cli.predict:main",
            "nnsam2_find_best_configuration = nnsam2.cli.find_best_configuration:main",
            "nnsam2_evaluate = nnsam2.cli.evaluate:main",
            "nnsam2_evaluate_interactive = nnsam2.cli.evaluate_interactive:main",
            "nnsam2_demo = nnsam2.cli.demo:main",
            "nnsam2_benchmark = nnsam2.cli.benchmark:main",
            "nnsam2_report = nnsam2.cli.report:main",
            "nnsam2_export = nnsam2.cli.export:main",
            "nnsam2_download_checkpoint = nnsam2.cli.download_checkpoint:main",
            "nnsam2_convert_acdc = dataset_conversion.Dataset027_ACDC:main",
            "nnsam2_convert_synapse = dataset_conversion.Dataset111_Synapse:main",
            "nnsam2_convert_isbi2012 = dataset_conversion.Dataset112_ISBI2012:main",
            "nnsam2_convert_kvasir = dataset_conversion.Dataset113_KvasirSEG:main",
            "nnsam2_convert_drive = dataset_conversion.Dataset114_DRIVE:main",
            "nnsam2_convert_brats_deepmedic = dataset_conversion.Dataset115_BraTSDeepMedic:main",
            "nnsam2_generate_demo_dataset = dataset_conversion.demo_dataset:main",
        ]
    },
)
