"""DeepMimic Revisited: DeepMimic's motion imitation as an rl_games / IsaacGymEnvs task.

`pip install -e .` installs the dependencies only. The code runs from this checkout
(`python train.py ...`); its top-level `tasks/` and `poselib_utils/` folders are deliberately
not installed into site-packages, where a bare `tasks` package would clash with other projects.
"""
from setuptools import setup

setup(
    name="deepmimic-revisited",
    version="0.1.0",
    description="DeepMimic motion imitation on GPU simulation, as an rl_games/IsaacGymEnvs task",
    license="MIT (code); DeepMimic data MIT, Copyright (c) 2018 Xue Bin Peng",
    python_requires=">=3.8",
    packages=[],
    py_modules=[],
    install_requires=[
        "torch>=1.13",            # install the build you want first (CPU or CUDA); this only checks it
        "numpy",
        "scipy",
        "mujoco>=3.2",
        "rl-games==1.6.5",
        "hydra-core>=1.3",
        "pyyaml",                 # benchmarks/learning.py reads skill files (hydra needs it too)
        "gymnasium>=0.29; python_version >= '3.9'",
        "gym==0.23.1; python_version < '3.9'",
        "tensorboard",
    ],
    extras_require={
        "test": ["pytest>=7"],
        # mp4 clips: capture_video=True, python -m tools.preview_motion --out
        "video": ["imageio>=2.28", "imageio-ffmpeg>=0.4.9"],
        # sim_engine=mujoco_warp (GPU); the versions tested with mujoco 4.0.0 (its API still moves)
        "gpu": ["mujoco-warp==4.0.0", "warp-lang==1.19.0"],
    },
)
