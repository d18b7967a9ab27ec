"""Evaluating models on the visitor's own labelled images: the inputs, the label mapping and the figures.

Pure data work (no torch, no gradio): `labelled` reads class folders from a folder or a zip, `mapping` ties folder
names to each model's labels, `figures` computes the report's statistics with scikit-learn and scipy. The task that
runs the models is `beit_demo.service.evaluate`.
"""
