"""Shim for nnU-Net's trainer lookup: point ``nnUNet_extTrainer`` at this folder.

It only re-exports nnsam2's trainers, so nnU-Net's recursive search imports nothing else.
"""
from nnsam2.nnunet.trainers import *  # noqa: F401,F403
from nnsam2.nnunet.trainer_schedules import *  # noqa: F401,F403
from nnsam2.nnunet.demo_trainer import *  # noqa: F401,F403
from nnsam2.nnunet.budget_trainer import *  # noqa: F401,F403
