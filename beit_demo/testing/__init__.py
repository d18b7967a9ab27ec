"""Offline stand-ins for the Hugging Face Hub, used by the tests and the benchmark.

Nothing here is imported by the app itself.
"""
