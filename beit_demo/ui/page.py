"""The page: a title and the tabs, each one a module of `beit_demo.ui.tabs` with its components and its handlers.

torch is imported on the first request, not here, so the page is served as soon as Gradio is up.
"""

from __future__ import annotations

import gradio as gr

from beit_demo.service import DemoService
from beit_demo.ui.shared import EXAMPLES_DIR, Page, Tab
from beit_demo.ui.tabs.batch import BatchTab
from beit_demo.ui.tabs.classify import ClassifyTab
from beit_demo.ui.tabs.compare import CompareTab
from beit_demo.ui.tabs.evaluate import EvaluateTab
from beit_demo.ui.tabs.live import LiveTab
from beit_demo.ui.tabs.models import ModelsTab

__all__ = ["EXAMPLES_DIR", "TABS", "UPLOAD_LIFETIME_S", "build_demo"]

UPLOAD_LIFETIME_S = 3600  # uploads and results are deleted this long after they arrive (checked every 10 min)
TABS: tuple[type[Tab], ...] = (
    ClassifyTab,
    CompareTab,
    BatchTab,
    EvaluateTab,
    LiveTab,
    ModelsTab,
)  # in the page's order


def build_demo(service: DemoService) -> gr.Blocks:
    """Build the Blocks app. Nothing is downloaded or loaded until a visitor (or a preload) asks."""
    with gr.Blocks(title="BEiT image classification demo", delete_cache=(600, UPLOAD_LIFETIME_S)) as demo:
        gr.Markdown(
            "# Image classification with BEiT and DeiT\n"
            "Pick a model, upload, paste or snap a photo, and see what the model thinks it shows. "
            "Share a link to a model with `?model=KEY`, or to any image classifier on the Hub with "
            "`?model=owner/name`."
        )
        page = Page(demo, service.settings)
        tabs = [tab(service) for tab in TABS]
        with gr.Tabs():
            for tab in tabs:
                with gr.Tab(tab.title) as page.tabs[tab.title]:
                    tab.build(page)
        for tab in tabs:
            tab.finish(page)
    return demo
