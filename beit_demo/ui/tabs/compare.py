"""The Compare tab: several models on one photo, side by side, each with where it looked for its top-1."""

from __future__ import annotations

import gradio as gr

from beit_demo.catalog import CATALOG, CatalogEntry
from beit_demo.errors import DemoError, InvalidRequestError
from beit_demo.service import MAX_HUB_MODELS_COMPARED, MAX_TOP_K, Comparison, ImageInput
from beit_demo.share_store import StoredShare
from beit_demo.ui import texts
from beit_demo.ui.components import UploadedImage
from beit_demo.ui.shared import (
    EXAMPLES_DIR,
    Page,
    Tab,
    catalog_entry,
    model_picker,
    models_and_k,
    progress_reporter,
    saved_explanation,
    shows_errors,
    task_limits,
)
from beit_demo.ui.sharing import Restorer, Snapshot, restored_file

COMPARE_DEFAULT = ("facemask-beit", "facemask-deit")
EXAMPLES = ("astronaut_face_mask.jpg", "astronaut_face.jpg", "chelsea.jpg")


def panel_slots(models: list[str] | None) -> list[str | None]:
    """The tab's panels, in order: one per catalog model (its key, or None when not chosen), then one per model typed
    from the Hub (its id as typed, or None)."""
    chosen = [catalog_entry(model).key if catalog_entry(model) else model for model in models or []]
    typed = [model for model in dict.fromkeys(chosen) if catalog_entry(model) is None][:MAX_HUB_MODELS_COMPARED]
    catalog = [entry.key if entry.key in chosen else None for entry in CATALOG]
    return catalog + [_nth(typed, index) for index in range(MAX_HUB_MODELS_COMPARED)]


class CompareTab(Tab):
    title = "Compare"

    def build(self, page: Page) -> None:
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                self.image = image = UploadedImage(
                    type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=280
                )
                self.models = models = model_picker(
                    page.settings, value=list(COMPARE_DEFAULT), multiselect=True, label="Models to compare"
                )
                self.top_k = top_k = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="Top-k predictions")
                button = gr.Button("Compare", variant="primary")
                gr.Examples(
                    examples=[[str(EXAMPLES_DIR / name)] for name in EXAMPLES], inputs=[image], label="Examples"
                )
            with gr.Column(scale=2, min_width=300):
                self.summary = summary = gr.Markdown("")
                with gr.Row():
                    labels, overlays, columns = [], [], []
                    for entry in CATALOG:
                        with gr.Column(min_width=220, visible=entry.key in COMPARE_DEFAULT) as column:
                            labels.append(gr.Label(label=entry.title))
                            overlays.append(
                                gr.Image(label=f"{entry.title}: where it looked for its top-1", interactive=False)
                            )
                        columns.append(column)
                    # Panels for models typed by visitors, filled in the order they were typed.
                    for number in range(1, MAX_HUB_MODELS_COMPARED + 1):
                        with gr.Column(min_width=220, visible=False) as column:
                            labels.append(gr.Label(label=f"Hub model {number}"))
                            overlays.append(gr.Image(label="Where it looked for its top-1", interactive=False))
                        columns.append(column)
                page.sharing.button(self.key)
        self.labels, self.overlays = labels, overlays
        catalog_labels, hub_labels = labels[: len(CATALOG)], labels[len(CATALOG) :]
        inputs = [image, models, top_k]
        limits = task_limits(page.settings)
        button.click(
            self.compare_view,
            inputs=inputs,
            outputs=[*catalog_labels, summary, *hub_labels],
            api_name=False,
            show_progress_on=[summary],  # finished panels stay readable while others download
            **limits,
        ).then(self.compare_explanations, inputs=[image, models], outputs=overlays, api_name=False, **limits)
        # /compare for API clients keeps its outputs (a panel per catalog model, then the summary, which has every
        # model's top-1): the page's extra panels for typed models would change their shape.
        api_button = gr.Button(visible=False)
        api_button.click(self.compare, inputs=inputs, outputs=[*catalog_labels, summary], api_name="compare", **limits)
        models.change(_columns, inputs=models, outputs=columns, api_name=False, queue=False)
        restored = [image, models, top_k, summary, *labels, *overlays]
        page.sharing.restorers[self.key] = Restorer(self.key, self.snapshot, self.restore, restored)

    @shows_errors
    def compare(self, image: ImageInput, model_keys: list[str], top_k: float, progress=gr.Progress()):  # noqa: B008
        """Compare several models on one image: each one's top-k, side by side.

        Yields as each model finishes, so fast ones show while others download.

        Args:
            image: the photo.
            model_keys: the models: catalog keys (beit-in22k, facemask-deit, ...) or Hub ids owner/name (at most 2).
            top_k: how many classes each model returns, 1 to 20.

        Returns:
            One panel per catalog model (shown for those asked for; a face-mask model's panel gives the share of
            faces per label), then a Markdown table of every model's top-1, time and weights, with whether models
            of one label space agree.
        """
        for comparison in self.service.compare(image, model_keys, top_k, progress_reporter(progress)):
            yield _outputs(comparison)[: len(CATALOG) + 1]

    @shows_errors
    def compare_view(
        self,
        image: ImageInput,
        model_keys: list[str],
        top_k: float,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        """As `compare`, with the page's panels for models typed from the Hub after the summary."""
        for comparison in self.service.compare(image, model_keys, top_k, progress_reporter(progress)):
            panels = [[scores, caption] if shown else None for shown, scores, caption in _panels(comparison)]
            summary = texts.compare_summary(comparison)
            shown = {"photo": image, "models": list(model_keys), "top_k": int(top_k), "summary": summary}
            self.remember(request, "result", {**shown, "panels": panels}, new=True)
            yield _outputs(comparison)

    def compare_explanations(self, image: ImageInput, model_keys: list[str], request: gr.Request = None):
        """After a comparison: each chosen model's overlay for its own top-1 (a face-mask model's: each face's own
        label on its crop), filled in as each is ready (catalog panels first, then those of the models from the Hub).
        """
        slots = panel_slots(model_keys)
        overlays: dict[str, str] = {}
        for key in (slot for slot in slots if slot is not None):
            entry = catalog_entry(key)
            try:
                if entry is not None and entry.classifies_faces:  # its panel gives face-by-face answers
                    _, overlays[key], _, _ = saved_explanation(self.service.explain_faces(image, key))
                else:
                    _, overlays[key], _, _ = saved_explanation(self.service.explain(image, key, "", ""))
            except DemoError:
                continue  # the comparison itself already said why this model has no answer (or cannot be explained)
            shown = [overlays.get(slot) for slot in slots]
            self.remember(request, "overlays", {"photo": image, "models": list(model_keys), "paths": shown})
            yield [gr.Image(value=path, visible=slot is not None) for path, slot in zip(shown, slots, strict=True)]

    # -- sharing ------------------------------------------------------------------------------------------------

    def snapshot(self, parts: dict) -> Snapshot:
        """The latest comparison, with the overlays made for it so far."""
        result = parts.get("result")
        if result is None:
            raise InvalidRequestError("Compare first: there is no result to share yet.")
        overlays = parts.get("overlays", {})
        same = (overlays.get("photo"), overlays.get("models")) == (result["photo"], result["models"])
        paths = overlays["paths"] if same else []
        pictures = {"photo.jpg": result["photo"]}
        pictures |= {f"overlay-{slot}.jpg": path for slot, path in enumerate(paths) if path}
        settings = {"models": result["models"], "top_k": result["top_k"]}
        return Snapshot(settings, {"panels": result["panels"], "summary": result["summary"]}, pictures)

    def restore(self, settings: dict, stored: StoredShare | None) -> dict:
        """The tab as a link left it: the models and k, then the photo, each panel and each overlay."""
        updates = models_and_k(settings, self.models, self.top_k, self.service.settings)
        if stored is None:
            return updates
        results = stored.record["results"]
        updates |= {self.image: restored_file(stored, "photo.jpg"), self.summary: results["summary"]}
        for slot, (label, overlay) in enumerate(zip(self.labels, self.overlays, strict=True)):
            panel = results["panels"][slot] if slot < len(results["panels"]) else None
            updates[label] = (
                gr.Label(value=panel[0], label=panel[1], visible=True) if panel else gr.Label(visible=False)
            )
            name = f"overlay-{slot}.jpg"
            updates[overlay] = gr.Image(value=restored_file(stored, name) if name in stored.files else None)
        return updates


def _outputs(comparison: Comparison) -> list:
    """One `gr.Label` update per catalog model (shown only for those chosen), the summary, then one per panel for
    models from the Hub."""
    panels = [
        gr.Label(value=scores, label=caption, visible=True) if shown else gr.Label(value=None, visible=False)
        for shown, scores, caption in _panels(comparison)
    ]
    return [*panels[: len(CATALOG)], texts.compare_summary(comparison), *panels[len(CATALOG) :]]


def _panels(comparison: Comparison) -> list[tuple[bool, dict[str, float] | None, str]]:
    """Each panel, catalog models first, then those from the Hub: whether it is shown, its scores and caption."""
    chosen = {entry.key for entry in comparison.entries}
    hub_entries = [entry for entry in comparison.entries if not entry.from_catalog]

    def panel(entry: CatalogEntry | None) -> tuple[bool, dict[str, float] | None, str]:
        if entry is None or entry.key not in chosen:
            return False, None, ""
        outcome = comparison.outcomes.get(entry.key)
        scores = None
        if outcome and outcome.classification:
            scores = outcome.classification.scores
        elif outcome and outcome.faces:
            scores = texts.face_shares(outcome.faces)
        return True, scores, texts.compare_caption(entry, outcome is not None)

    return [panel(entry) for entry in CATALOG] + [
        panel(_nth(hub_entries, index)) for index in range(MAX_HUB_MODELS_COMPARED)
    ]


def _columns(keys: list[str] | None) -> list:
    """A column for each catalog model chosen, then one for each model typed (up to the page's panels)."""
    return [gr.Column(visible=slot is not None) for slot in panel_slots(keys)]


def _nth(items: list, index: int):
    return items[index] if index < len(items) else None
