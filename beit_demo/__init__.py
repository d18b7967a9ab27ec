"""Try and compare image-classification transformers (BEiT, DeiT) in the browser."""

from beit_demo.config import apply_environment_defaults

__version__ = "0.1.0"

# huggingface_hub and gradio read their settings (telemetry, timeouts) when first imported, so the safe
# defaults must be in the environment before any submodule imports them. This only fills unset variables.
apply_environment_defaults()
