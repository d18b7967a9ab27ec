"""The benchmark: speed and memory of the demo against transformers' pipeline and Gradio's own floor.

Not part of the app (a Space ships only `beit_demo/`); run it from the repository root with ``python -m benchmarks``.
"""
