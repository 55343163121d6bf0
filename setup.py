"""mmseg-infopro: InfoPro local supervision for MMSegmentation 1.x.

mmcv is not a hard requirement because mmcv comes in two incompatible
distributions that install the same package: the full ``mmcv`` (compiled
ops, usually installed by hand for one's CUDA) and ``mmcv-lite``. Install
``mmseg-infopro[lite]`` if you have no mmcv; plain ``mmseg-infopro`` keeps
the full mmcv you already have (never install mmcv-lite over it).
torch is required as ``torch>=2.6`` (checkpoints load with
``weights_only=True`` and an allowlist given as ``(object, name)`` pairs,
which torch 2.6 introduced), so that an installed recent torch (CPU or
CUDA) satisfies it and pip pulls no other build.
"""
from setuptools import find_packages, setup

MMCV = 'mmcv{}>=2.0.0rc4,<2.2.0'

setup(
    name='mmseg-infopro',
    version='0.1.0',
    description='Train MMSegmentation models without end-to-end '
    'back-propagation: InfoPro locally supervised modules (ICLR 2021)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_infopro', 'mmseg_infopro.*']),
    python_requires='>=3.8',
    install_requires=[
        'torch>=2.6',
        'mmengine==0.10.7',
        # mmseg.utils imports ftfy/regex (its "multimodal" extra)
        'mmsegmentation[multimodal]==1.2.2',
        # the same opencv distribution mmengine and mmcv ask for: a second
        # one (e.g. -headless) would install a clashing cv2
        'opencv-python>=3',
        'numpy',
    ],
    extras_require={
        'lite': [MMCV.format('-lite')],
        'full': [MMCV.format('')],
        'tests': ['pytest', 'cityscapesscripts'],
        'bench': ['matplotlib'],
    },
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Framework :: PyTorch',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
