"""Settings read from the environment, once, in one place.

`Settings.from_env()` is the only reader of ``BEIT_DEMO_*`` and the server variables; the Hub's own
variables (``HF_HOME``, ``HF_HUB_OFFLINE``, ...) are read by huggingface_hub itself, but their safe
defaults are set here by `apply_environment_defaults` before huggingface_hub is first imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from beit_demo.catalog import CATALOG, get_entry
from beit_demo.errors import ConfigError

# Defaults for variables read by huggingface_hub and gradio *at import time*. Setting them later has no
# effect, so `beit_demo/__init__.py` applies them before anything imports those libraries.
_LIBRARY_ENV_DEFAULTS = {
    # No usage reports from a public demo: anonymous visitors did not agree to them.
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    # Bound how long a visitor can wait on a slow or silent Hub. huggingface_hub tries a file's HEAD up to 7 times
    # (6 of them with 23 s of backoff in all; `beit_demo.hub` gives each the same timeout) and a stalled GET up to
    # 6 times (1 s apart), so the worst single fault costs 7 x 5 + 23 = 58 s on a HEAD and 6 x 10 + 5 = 65 s on a
    # GET (docs/security.md). A GET that stalls is resumed, not restarted, so the 10 s read timeout
    # (huggingface_hub's default) does not make a big checkpoint fail on a busy Hub.
    "HF_HUB_ETAG_TIMEOUT": "5",
    "HF_HUB_DOWNLOAD_TIMEOUT": "10",
    # hf_xet is an optional accelerator for downloads; the plain HTTP path is the one the tests exercise.
    "HF_HUB_DISABLE_XET": "1",
    # After loading a .bin-only checkpoint by repo id, transformers starts a background thread that asks the Hub
    # (and a conversion Space) to convert it. We load from the cache folder, which never does; this is a guard.
    "DISABLE_SAFETENSORS_CONVERSION": "1",
}

PRECISIONS = ("fp32", "int8", "fp16")


def apply_environment_defaults() -> None:
    """Set the library variables above unless the user already set them."""
    for name, value in _LIBRARY_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _default_share_dir() -> str:
    """Beside the model cache: on a Space whose HF_HOME is on persistent storage, shares outlive a restart too."""
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "beit-demo-shares")


def _is_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _preload_keys(raw: str) -> tuple[str, ...]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if names == ["all"]:
        return tuple(entry.key for entry in CATALOG)
    return tuple(get_entry(name).key for name in names)  # an unknown key fails at start-up, listing valid ones


@dataclass(frozen=True)
class Settings:
    """Everything the demo can be configured with."""

    # BEIT_DEMO_MAX_MODELS: how many models stay loaded in memory (least recently used is freed first).
    max_models: int = 3
    # BEIT_DEMO_PRELOAD: catalog keys (comma-separated, or "all") loaded in the background after start-up.
    preload: tuple[str, ...] = ()
    # BEIT_DEMO_PRECISION: fp32 (default), int8 (dynamic quantization of Linear layers, CPU) or fp16 (CUDA only).
    precision: str = "fp32"
    # BEIT_DEMO_MAX_PIXELS: largest image (width x height) accepted, checked before decoding.
    max_pixels: int = 40_000_000
    # BEIT_DEMO_MAX_FILE_SIZE: largest upload in bytes; bigger ones get HTTP 413 from Gradio.
    max_file_size: int = 20 * 1024 * 1024
    # BEIT_DEMO_QUEUE_SIZE: requests waiting beyond this get "queue is full" instead of piling up.
    queue_size: int = 32
    # BEIT_DEMO_CONCURRENCY: requests working on an image at once (decoded pixels in memory). Their forward passes are
    # batched (one pass at a time), so this bounds memory, not CPU contention. Requests waiting for a download do
    # not count: they wait apart, so that requests for models in memory never queue behind a slow Hub.
    concurrency: int = 8
    # BEIT_DEMO_DOWNLOADS: models downloading or loading at once; further ones wait their turn.
    downloads: int = 2
    # BEIT_DEMO_MAX_BATCH: most requests for one model run as a single forward pass.
    max_batch: int = 8
    # BEIT_DEMO_HUB_MODELS: accept typed Hub ids (owner/name[@revision]) beside the catalog; "0" turns them off.
    hub_models: bool = True
    # BEIT_DEMO_MAX_HUB_MODELS: models from outside the catalog loading or in memory at once (apart from max_models).
    max_hub_models: int = 2
    # BEIT_DEMO_MAX_MODEL_BYTES: the most a typed Hub model's files (config, preprocessor config, weights) may take,
    # read from the repo listing before any weight is requested.
    max_model_bytes: int = 1_500_000_000
    # BEIT_DEMO_LIVE_STREAMS: live camera streams answered at once; a further visitor waits in the queue for a turn.
    live_streams: int = 2
    # BEIT_DEMO_LIVE_SECONDS: how long one live stream runs before it gives others their turn (it may be restarted).
    live_seconds: int = 120
    # BEIT_DEMO_UPLOAD_LIFETIME_S: uploads and results in Gradio's cache are deleted this long after they arrive (the
    # clean-up runs every min(600, lifetime) seconds). Shared links do not depend on them.
    upload_lifetime_s: int = 3600
    # BEIT_DEMO_SHARE_DIR: where shared results are kept (point it at persistent storage, /data on a Space, to keep
    # links across restarts). Default: beit-demo-shares under HF_HOME.
    share_dir: str = field(default_factory=_default_share_dir)
    # BEIT_DEMO_SHARE_MAX_BYTES: the share store's size cap; over it, the least recently opened shares go first.
    share_max_bytes: int = 2_000_000_000
    # BEIT_DEMO_SHARE_DAYS: a share is deleted this many days after it was last opened.
    share_days: int = 30
    # BEIT_DEMO_SHARES_PER_MINUTE: shares one visitor (one address) may make in a minute.
    shares_per_minute: int = 10
    # GRADIO_SERVER_NAME / PORT (or GRADIO_SERVER_PORT): where the server listens. Spaces set both.
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    # SPACE_ID: set by Hugging Face Spaces (owner/name); link previews then show the screenshot from the Space's repo.
    space_id: str = ""
    # HF_ENDPOINT: read by huggingface_hub; kept here for the address of the Space's screenshot in link previews.
    hub_endpoint: str = "https://huggingface.co"
    # HF_HUB_OFFLINE: read by huggingface_hub; kept here so messages can say why a download was not tried.
    hub_offline: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment.

        Raises:
            ConfigError: a variable is malformed (the message names it).
            UnknownModelError: BEIT_DEMO_PRELOAD names a model that is not in the catalog.
        """
        precision = os.environ.get("BEIT_DEMO_PRECISION", "fp32").strip().lower() or "fp32"
        if precision not in PRECISIONS:
            raise ConfigError(f"BEIT_DEMO_PRECISION must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
        port = os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT")
        return cls(
            max_models=_int("BEIT_DEMO_MAX_MODELS", cls.max_models),
            preload=_preload_keys(os.environ.get("BEIT_DEMO_PRELOAD", "")),
            precision=precision,
            max_pixels=_int("BEIT_DEMO_MAX_PIXELS", cls.max_pixels),
            max_file_size=_int("BEIT_DEMO_MAX_FILE_SIZE", cls.max_file_size),
            queue_size=_int("BEIT_DEMO_QUEUE_SIZE", cls.queue_size),
            concurrency=_int("BEIT_DEMO_CONCURRENCY", cls.concurrency),
            downloads=_int("BEIT_DEMO_DOWNLOADS", cls.downloads),
            max_batch=_int("BEIT_DEMO_MAX_BATCH", cls.max_batch),
            hub_models=os.environ.get("BEIT_DEMO_HUB_MODELS", "1").strip().upper() not in {"0", "OFF", "NO", "FALSE"},
            max_hub_models=_int("BEIT_DEMO_MAX_HUB_MODELS", cls.max_hub_models),
            max_model_bytes=_int("BEIT_DEMO_MAX_MODEL_BYTES", cls.max_model_bytes),
            live_streams=_int("BEIT_DEMO_LIVE_STREAMS", cls.live_streams),
            live_seconds=_int("BEIT_DEMO_LIVE_SECONDS", cls.live_seconds),
            upload_lifetime_s=_int("BEIT_DEMO_UPLOAD_LIFETIME_S", cls.upload_lifetime_s),
            share_dir=os.environ.get("BEIT_DEMO_SHARE_DIR", "").strip() or _default_share_dir(),
            share_max_bytes=_int("BEIT_DEMO_SHARE_MAX_BYTES", cls.share_max_bytes),
            share_days=_int("BEIT_DEMO_SHARE_DAYS", cls.share_days),
            shares_per_minute=_int("BEIT_DEMO_SHARES_PER_MINUTE", cls.shares_per_minute),
            server_name=os.environ.get("GRADIO_SERVER_NAME", cls.server_name),
            server_port=int(port) if port else cls.server_port,
            space_id=os.environ.get("SPACE_ID", "").strip(),
            hub_endpoint=os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or cls.hub_endpoint,
            hub_offline=_is_true("HF_HUB_OFFLINE"),
        )
