"""The page: a title and the tabs, each one a module of `beit_demo.ui.tabs` with its components and its handlers.

torch is imported on the first request, not here, so the page is served as soon as Gradio is up.
"""

from __future__ import annotations

import html
import re

import gradio as gr

from beit_demo.config import Settings
from beit_demo.service import DemoService
from beit_demo.ui.shared import EXAMPLES_DIR, Page, Tab
from beit_demo.ui.sharing import Sharing
from beit_demo.ui.tabs.batch import BatchTab
from beit_demo.ui.tabs.classify import ClassifyTab
from beit_demo.ui.tabs.compare import CompareTab
from beit_demo.ui.tabs.evaluate import EvaluateTab
from beit_demo.ui.tabs.live import LiveTab
from beit_demo.ui.tabs.models import ModelsTab

__all__ = ["EXAMPLES_DIR", "TABS", "build_demo", "page_head"]

TITLE = "BEiT image classification demo"
DESCRIPTION = "Try and compare BEiT and DeiT image classifiers: top-k, faces, explanations, your own labelled images."
SCREENSHOT = "docs/screenshot.png"  # in the repository; on a Space, served by the Hub from the Space's own repo

TABS: tuple[type[Tab], ...] = (
    ClassifyTab,
    CompareTab,
    BatchTab,
    EvaluateTab,
    LiveTab,
    ModelsTab,
)  # in the page's order


def build_demo(service: DemoService) -> gr.Blocks:
    """Build the Blocks app. Nothing is downloaded or loaded until a visitor (or a preload) asks.

    Uploads and results in Gradio's cache are deleted ``BEIT_DEMO_UPLOAD_LIFETIME_S`` after they arrive; a shared
    result lives in the share store instead (`beit_demo.ui.sharing`).
    """
    lifetime = service.settings.upload_lifetime_s
    with gr.Blocks(title=TITLE, delete_cache=(min(600, lifetime), lifetime)) as demo:
        gr.Markdown(
            "# Image classification with BEiT and DeiT\n"
            "Pick a model, upload, paste or snap a photo, and see what the model thinks it shows. "
            "*Share as link* under a result copies a link that opens it as you see it; `?model=KEY` (or "
            "`?model=owner/name`, any image classifier on the Hub) opens the page on a model."
        )
        notice = gr.Markdown(visible=False)  # what a link could not restore
        sharing = Sharing(service.settings)
        page = Page(demo, service.settings, sharing)
        tabs = [tab(service, sharing) for tab in TABS]
        with gr.Tabs() as tab_bar:
            for tab in tabs:
                with gr.Tab(tab.title, id=tab.key) as page.tabs[tab.title]:
                    tab.build(page)
        for tab in tabs:
            tab.finish(page)
        sharing.wire(demo, tab_bar, [tab.key for tab in tabs], notice)
    return demo


def page_head(settings: Settings) -> str:
    """The page's link preview (Open Graph and Twitter cards): a shared link shows the demo's title and, on a Space,
    its screenshot, taken from the Space's repo on the Hub."""
    tags = {"og:type": "website", "og:title": TITLE, "og:description": DESCRIPTION}
    if re.fullmatch(r"[\w.-]+/[\w.-]+", settings.space_id):
        tags["og:image"] = f"{settings.hub_endpoint}/spaces/{settings.space_id}/resolve/main/{SCREENSHOT}"
    lines = [f'<meta property="{name}" content="{html.escape(value)}">' for name, value in tags.items()]
    card = "summary_large_image" if "og:image" in tags else "summary"
    return "\n".join([*lines, f'<meta name="twitter:card" content="{card}">'])
