"""The Models tab: where each model is (Hub, disk, memory) and how big, refreshed while shown; load one ahead."""

from __future__ import annotations

import gradio as gr

from beit_demo.catalog import DEFAULT_MODEL_KEY
from beit_demo.ui import texts
from beit_demo.ui.shared import Page, Tab, model_picker, progress_reporter, shows_errors

REFRESH_S = 2.0  # the status table's refresh while the tab is shown


class ModelsTab(Tab):
    title = "Models"

    def build(self, page: Page) -> None:
        gr.Markdown(texts.memory_note(page.settings))
        # Filled when the tab is shown (a callable value would be an API endpoint and an MCP tool of its own).
        self.table = gr.Dataframe(headers=texts.MODEL_TABLE_HEADERS, interactive=False)
        self.timer = gr.Timer(REFRESH_S, active=False)
        # Outside the queue: a status refresh must never wait behind, or crowd out, classification requests.
        self.timer.tick(
            self.model_table,
            outputs=self.table,
            api_name="model_status",
            api_visibility="undocumented",  # the page's own: not an MCP tool, not in the API docs
            queue=False,
        )
        with gr.Row():
            model = model_picker(page.settings, value=DEFAULT_MODEL_KEY, label="Model", scale=2)
            button = gr.Button("Download and load now", scale=1)
        ready = gr.Markdown("")
        button.click(
            self.prepare,
            inputs=model,
            outputs=[ready, self.table],
            api_name="load_model",
            api_visibility="undocumented",
        )

    def finish(self, page: Page) -> None:
        """The refresh runs only while this tab is shown; the table is filled as it opens."""
        for title, tab in page.tabs.items():
            tab.select(_timer_switch(title == self.title), outputs=self.timer, api_name=False)
        page.tabs[self.title].select(self.model_table, outputs=self.table, api_name=False, queue=False)

    def model_table(self) -> list[list]:
        """One row per catalog model: where it is and how big it is on disk."""
        return texts.model_table(self.service.model_status())

    @shows_errors
    def prepare(self, model_key: str, progress=gr.Progress()):  # noqa: B008
        """Download and load a model ahead of use."""
        origin = self.service.prepare(model_key, progress_reporter(progress))
        return texts.ready_line(self.service.entry(model_key), origin), self.model_table()


def _timer_switch(active: bool):
    return lambda: gr.Timer(active=active)
