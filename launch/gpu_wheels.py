"""Download the wheels a bare CUDA machine needs to run launch/gpu_check.sh (`make gpu-wheels`).

    python launch/gpu_wheels.py [--out .gpu-wheels] [--python-version 3.12] [--check]

The project's GPU machine (one H100/H200, Python 3.12, x86_64) has torch, transformers, accelerate,
numpy, pytest and the usual scientific stack, reaches no package registry, and lacks deepspeed,
hydra-core, omegaconf, antlr4, webdataset, wandb and decord. This script fetches those at the
versions installed in this venv (the versions the test suite passed with), and, recursively, every
requirement of theirs the machine does not already have, as wheels for the machine's Python; a
package published only as a source archive (deepspeed, antlr4-python3-runtime) is built here into a
pure-Python wheel. flash-attn is added when a prebuilt wheel for the machine exists on the index
(PyPI carries only its source, whose build needs the GPU machine's CUDA toolkit and ~30 minutes).
The folder is git-ignored and travels to the machine with the working tree (`carry`).

`--check` only verifies the folder: one wheel per needed distribution, nothing missing, nothing
twice (two versions of one package make pip refuse the whole install).
"""

from __future__ import annotations

import argparse
import email.parser
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

# What the machine must receive: the card's dependencies that its image lacks.
NEEDED = ("deepspeed", "hydra-core", "omegaconf", "antlr4-python3-runtime", "webdataset", "wandb", "decord")
OPTIONAL = ("flash-attn",)

# The machine's image, as read on 2026-11-17 (its `pip list`): requirements already satisfied there.
ON_THE_MACHINE = set(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
    jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
    linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
    mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
    numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
    nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
    nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
    onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
    orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
    propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
    pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
    scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
    torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
    wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
)
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return canonical(path.name.split("-")[0])


def requirements(wheel: Path, python_version: str) -> list[str]:
    """Names of the wheel's unconditional requirements (and those whose marker holds on the machine)."""
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(archive.read(meta_name).decode())
    names = []
    for line in message.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        if "extra ==" in marker:
            continue
        if "python_version" in marker or "sys_platform" in marker or "platform_system" in marker:
            if not marker_holds(marker, python_version):
                continue
        names.append(canonical(re.split(r"[\s<>=!~\[(]", requirement.strip(), maxsplit=1)[0]))
    return names


def marker_holds(marker: str, python_version: str) -> bool:
    from packaging.markers import Marker

    return Marker(marker.strip()).evaluate(
        {"python_version": python_version, "python_full_version": f"{python_version}.0", "sys_platform": "linux",
         "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}
    )  # fmt: skip


def pinned(name: str) -> str:
    """name==version as installed in this venv (what the tests ran with), or the bare name."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def fetch(spec: str, out: Path, python_version: str) -> bool:
    """A binary wheel for the machine from the index, else a pure-Python wheel built here."""
    binary = [
        sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
        "--python-version", python_version, "--implementation", "cp", "-d", str(out), spec,
    ] + [arg for platform in PLATFORMS for arg in ("--platform", platform)]  # fmt: skip
    if subprocess.run(binary, capture_output=True, text=True).returncode == 0:
        return True
    with tempfile.TemporaryDirectory() as build:
        built = subprocess.run(
            # No build isolation: deepspeed's setup imports torch, and an isolated build would fetch a
            # multi-GB CUDA torch for it; this venv's torch builds the same pure-Python wheel.
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                build,
                spec,
            ],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(build).glob("*.whl"))
        if built.returncode != 0 or not wheels:
            return False
        if not wheels[0].name.endswith("-none-any.whl"):
            print(f"  {spec}: only a source archive, and it builds a platform wheel here: skipped")
            return False
        wheels[0].rename(out / wheels[0].name)
    return True


def download(out: Path, python_version: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    have = {wheel_name(path) for path in out.glob("*.whl")}
    queue = [canonical(name) for name in NEEDED]
    missing = []
    while queue:
        name = queue.pop(0)
        if name in have or name in ON_THE_MACHINE:
            continue
        print(f"  {pinned(name)}")
        if not fetch(pinned(name), out, python_version):
            missing.append(name)
            continue
        have.add(name)
        wheel = next(path for path in out.glob("*.whl") if wheel_name(path) == name)
        queue.extend(requirements(wheel, python_version))
    for name in OPTIONAL:
        spec = pinned(name)
        ok = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", python_version, "--implementation", "cp", "-d", str(out), spec]
            + [arg for platform in PLATFORMS for arg in ("--platform", platform)],
            capture_output=True,
        ).returncode == 0  # fmt: skip
        print(
            f"  {spec}: {'prebuilt wheel found' if ok else 'no prebuilt wheel on the index (torch varlen is used)'}"
        )
    return missing


def check(out: Path, python_version: str) -> list[str]:
    """Problems with the folder: missing or duplicated distributions."""
    wheels = sorted(out.glob("*.whl"))
    names = [wheel_name(path) for path in wheels]
    problems = [f"two wheels of {name}" for name in sorted(set(names)) if names.count(name) > 1]
    problems += [f"no wheel of {name}" for name in NEEDED if canonical(name) not in names]
    for wheel in wheels:
        for requirement in requirements(wheel, python_version):
            if requirement not in names and requirement not in ON_THE_MACHINE:
                problems.append(
                    f"{wheel.name} needs {requirement}, which is neither in {out} nor on the machine"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".gpu-wheels"))
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    parser.add_argument("--check", action="store_true", help="only verify the folder")
    args = parser.parse_args(argv)
    if not args.check:
        print(f"[gpu-wheels] into {args.out} for CPython {args.python_version}, x86_64:")
        missing = download(args.out, args.python_version)
        if missing:
            print(f"[gpu-wheels] could not get: {', '.join(missing)}", file=sys.stderr)
            return 1
    problems = check(args.out, args.python_version)
    for problem in problems:
        print(f"[gpu-wheels] {problem}", file=sys.stderr)
    total = sum(path.stat().st_size for path in args.out.glob("*.whl")) / 2**20
    print(f"[gpu-wheels] {len(list(args.out.glob('*.whl')))} wheels, {total:.1f} MiB in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
