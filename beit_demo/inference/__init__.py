"""Pure inference on loaded models: images in, predictions out. Never imports gradio."""
