"""Check beit_demo.models.timm_beit against timm itself: same logits, same top-5, same preprocessed pixels.

Not part of CI: timm cannot be installed beside the project's torch. Run it in a separate virtualenv that has timm
(see docs/timm-conversion.md)::

    python3 -m venv /work/timm-venv
    /work/timm-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm transformers==5.23.0 safetensors pillow
    /work/timm-venv/bin/python tools/timm_parity.py

It builds timm's real ``beit_base_patch16_224`` with random weights, saves it with timm's own ``save_for_hf``
(the layout of the Hub repo), loads that with ``load_timm_beit``, and feeds both models the same inputs. Exits
non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the timm virtualenv does not have this project installed

import safetensors.torch  # noqa: E402
import timm  # noqa: E402
import timm.data  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402

from beit_demo.models.timm_beit import convert_state_dict, load_timm_beit  # noqa: E402
from beit_demo.models.timm_config import beit_config_from_timm, read_timm_config  # noqa: E402

ARCHITECTURE = "beit_base_patch16_224.in22k_ft_in22k_in1k"
DEFAULT_PHOTOS = REPO_ROOT / "tests" / "data" / "photos"
LOGIT_TOLERANCE = 1e-4
PIXEL_TOLERANCE = 1e-5


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the numbers; return 0 when every check passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of JPEG photos")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(
        f"timm {timm.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"transformers {transformers.__version__}"
    )
    torch.manual_seed(args.seed)
    timm_model = timm.create_model(ARCHITECTURE, pretrained=False).eval()
    _randomise(timm_model, seed=args.seed)

    with tempfile.TemporaryDirectory(prefix="timm-parity-") as folder:
        repo = Path(folder) / "repo"
        timm.models.save_for_hf(timm_model, repo, safe_serialization=True)  # config.json + model.safetensors
        _print_timings(repo)
        model, processor = load_timm_beit(repo / "config.json", repo / "model.safetensors")
        with_index = _with_stored_relative_position_index(timm_model, repo, Path(folder) / "repo-with-index")
        model_from_indexed, _ = load_timm_beit(with_index / "config.json", with_index / "model.safetensors")

    timm_count = sum(tensor.numel() for tensor in timm_model.state_dict().values())
    ours_count = sum(parameter.numel() for parameter in model.parameters())
    print(f"parameters: timm {timm_count:,}, converted {ours_count:,}")

    images = _photos(args.photos)
    timm_transform = timm.data.create_transform(**timm.data.resolve_model_data_config(timm_model))
    print(f"timm's transform: {timm_transform}".replace("\n", " "))
    timm_pixels = torch.stack([timm_transform(image) for _, image in images])
    our_pixels = processor([image for _, image in images])["pixel_values"]
    pixel_difference = (timm_pixels - our_pixels).abs().max().item()
    noise = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
    inputs = torch.cat([timm_pixels, noise])

    with torch.inference_mode():
        timm_logits = timm_model(inputs)
        our_logits = model(pixel_values=inputs).logits
        indexed_logits = model_from_indexed(pixel_values=inputs).logits
        pipeline_logits = model(pixel_values=our_pixels).logits  # our preprocessing and our model, end to end
    logit_difference = (timm_logits - our_logits).abs().max().item()
    pipeline_difference = (timm_logits[: len(images)] - pipeline_logits).abs().max().item()
    control_difference = _control_difference(inputs, timm_logits, seed=args.seed + 1)
    top5_same = torch.equal(timm_logits.topk(5).indices, our_logits.topk(5).indices)
    indexed_same = torch.equal(our_logits, indexed_logits)

    print(f"inputs: {len(images)} photos ({', '.join(name for name, _ in images)}) + {len(noise)} noise images")
    print(f"logit scale: std {timm_logits.std().item():.3f}, max |logit| {timm_logits.abs().max().item():.3f}")
    print(f"max |logit difference| (same inputs): {logit_difference:.3e}  (tolerance {LOGIT_TOLERANCE:g})")
    print(f"max |logit difference| (timm transform + timm vs ours end to end): {pipeline_difference:.3e}")
    print(f"control, a timm model with other random weights: max |logit difference| {control_difference:.3f}")
    print(f"top-5 identical for all {len(inputs)} inputs: {top5_same}")
    print(f"max |preprocessing difference| (TimmImageProcessor vs timm's transform): {pixel_difference:.3e}")
    print(f"checkpoint with a stored relative_position_index loads and gives identical logits: {indexed_same}")

    passed = (
        logit_difference <= LOGIT_TOLERANCE
        and pipeline_difference <= LOGIT_TOLERANCE
        and top5_same
        and pixel_difference <= PIXEL_TOLERANCE
        and indexed_same
        and timm_count == ours_count
    )
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def _randomise(model: torch.nn.Module, *, seed: int) -> None:
    """Replace timm's initial values (zero biases and position tables, 0.1 layer scale, a head scaled by 0.001)
    with random ones, so that the logits are of order one and a misplaced tensor changes them visibly."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith(("gamma_1", "gamma_2")):
                parameter.copy_(0.2 + 0.05 * noise)
            elif "norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.1 * noise)
            elif name.endswith("relative_position_bias_table"):
                parameter.copy_(0.5 * noise)
            elif parameter.ndim == 1 or name == "cls_token":
                parameter.copy_(0.1 * noise)
            else:  # matrices and the patch convolution: unit-variance outputs
                fan_in = parameter[0].numel()
                parameter.copy_(noise * fan_in**-0.5)


def _print_timings(repo: Path) -> None:
    """Time each step of the load; the first round also pays for transformers' lazy imports."""
    for round_name in ("first", "second"):
        start = time.perf_counter()
        config = beit_config_from_timm(read_timm_config(repo / "config.json"))
        read_weights = time.perf_counter()
        state = safetensors.torch.load_file(repo / "model.safetensors")
        converted = time.perf_counter()
        convert_state_dict(state, config)
        end = time.perf_counter()
        load_timm_beit(repo / "config.json", repo / "model.safetensors")
        total = time.perf_counter() - end
        print(
            f"timing ({round_name} round, base size): config {read_weights - start:.3f} s, read weights "
            f"{converted - read_weights:.3f} s, convert_state_dict {end - converted:.3f} s; "
            f"load_timm_beit in all {total:.3f} s"
        )


def _control_difference(inputs: torch.Tensor, timm_logits: torch.Tensor, *, seed: int) -> float:
    """How far the logits of an unrelated model are: the scale against which the parity numbers mean something."""
    other = timm.create_model(ARCHITECTURE, pretrained=False).eval()
    _randomise(other, seed=seed)
    with torch.inference_mode():
        return (other(inputs) - timm_logits).abs().max().item()


def _with_stored_relative_position_index(model: torch.nn.Module, repo: Path, target: Path) -> Path:
    """A copy of the saved checkpoint that also stores timm's own relative_position_index buffers, as older timm
    exports and Microsoft's original checkpoints do."""
    target.mkdir()
    tensors = safetensors.torch.load_file(repo / "model.safetensors")
    for layer, block in enumerate(model.blocks):
        tensors[f"blocks.{layer}.attn.relative_position_index"] = block.attn.relative_position_index.contiguous()
    safetensors.torch.save_file(tensors, target / "model.safetensors")
    (target / "config.json").write_bytes((repo / "config.json").read_bytes())
    return target


def _photos(folder: Path) -> list[tuple[str, Image.Image]]:
    """The photos, opened as timm's datasets open them, and each turned a quarter: both orientations are covered."""
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"No .jpg photos in {folder}")
    images = [(path.name, Image.open(path).convert("RGB")) for path in paths]
    turned = [(f"{name} turned", image.transpose(Image.Transpose.ROTATE_90)) for name, image in images]
    return images + turned


if __name__ == "__main__":
    sys.exit(main())
