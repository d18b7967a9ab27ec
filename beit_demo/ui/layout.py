"""The page: tabs and components, each event wired right after its components with an explicit API name.

What the events do is in `beit_demo.ui.handlers`; what the page says is in `beit_demo.ui.texts`.
torch is imported on the first request, not here, so the page is served as soon as Gradio is up.
"""

from __future__ import annotations

import gradio as gr

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, get_entry
from beit_demo.config import Settings
from beit_demo.inference.heatmaps import DEFAULT_METHOD, METHODS
from beit_demo.service import DEFAULT_FACE_SCORE, MAX_HUB_MODELS_COMPARED, MAX_TOP_K, DemoService
from beit_demo.ui import texts
from beit_demo.ui.components import ImageFiles, OpenDropdown, UploadedImage
from beit_demo.ui.handlers import (
    EXAMPLES_DIR,
    MAX_BATCH_FILES,
    ClassifyMode,
    Handlers,
    catalog_entry,
    classify_mode,
    example_samples,
    panel_slots,
)

UPLOAD_LIFETIME_S = 3600  # uploads and results are deleted this long after they arrive (checked every 10 min)
COMPARE_DEFAULT = ("facemask-beit", "facemask-deit")
# Boxes on the annotated photo, by label: the face-mask checkpoints' own label names.
FACE_COLOURS = {"Mask": "#2e7d32", "No Mask": "#c62828", "with_mask": "#2e7d32", "without_mask": "#c62828"}
_MODEL_CHOICES = [(entry.title, entry.key) for entry in CATALOG]


def _task_limits(settings: Settings) -> dict:
    """Gradio's limits for every event that runs a model: one group, as many at once as the queue admits.

    Each admitted request waits inside the service, for its model (downloads run apart, `BEIT_DEMO_DOWNLOADS` at a
    time) or for a work slot (`BEIT_DEMO_CONCURRENCY`): a request for a model in memory never queues behind one
    that waits on the Hub.
    """
    return {"concurrency_limit": settings.queue_size, "concurrency_id": "classify"}


def _model_picker(settings: Settings, **options) -> gr.Dropdown:
    """A dropdown of the catalog that also takes a typed Hub id, when the demo accepts them."""
    typed = settings.hub_models
    info = "Pick one, or type a Hub id (owner/name or owner/name@revision) and press Enter." if typed else None
    return OpenDropdown(choices=_MODEL_CHOICES, allow_custom_value=typed, info=info, **options)


def _classify_tab(handlers: Handlers, settings: Settings) -> gr.Dropdown:
    default = get_entry(DEFAULT_MODEL_KEY)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            model_dropdown = _model_picker(settings, value=default.key, label="Model")
            model_card_markdown = gr.Markdown(texts.model_card(default))
            image_input = UploadedImage(
                type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=320
            )
            top_k_slider = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Top-k predictions")
            with gr.Row(visible=default.classifies_faces) as face_options_row:
                find_faces_checkbox = gr.Checkbox(value=True, label="Find faces first", min_width=140)
                min_face_score_slider = gr.Slider(
                    0, 1, value=DEFAULT_FACE_SCORE, step=0.05, label="Minimum face score", min_width=160
                )
            adapt_checkbox = gr.Checkbox(
                value=True, label="Adapt the photo to the model's training style", visible=bool(default.input_adapter)
            )
            mode = classify_mode(default.key, True, True)
            # One button per mode, so that /classify keeps its three inputs whatever the ticks say.
            classify_button = gr.Button("Classify", variant="primary", visible=mode is ClassifyMode.PLAIN)
            classify_as_is_button = gr.Button("Classify", variant="primary", visible=mode is ClassifyMode.AS_IS)
            faces_button = gr.Button("Find faces and classify", variant="primary", visible=mode is ClassifyMode.FACES)
            examples_dataset = gr.Dataset(
                components=[gr.Image(type="filepath", visible=False)],
                samples=example_samples(default),
                label="Examples (click one)",
                layout="gallery",
            )
        with gr.Column(scale=1, min_width=300):
            with gr.Group(visible=default.classifies_faces) as faces_group:
                faces_annotated_image = gr.AnnotatedImage(label="Faces", color_map=FACE_COLOURS, height=360)
                faces_summary_markdown = gr.Markdown("")
                faces_dataframe = gr.Dataframe(headers=texts.FACE_TABLE_HEADERS, interactive=False, wrap=True)
                faces_json = gr.JSON(visible=False)
                with gr.Accordion("Explain: where did the model look on each face?", open=False):
                    faces_explain_method_dropdown = OpenDropdown(
                        list(METHODS), value=DEFAULT_METHOD, allow_custom_value=True, label="Method"
                    )
                    faces_explain_button = gr.Button("Explain each face")
                    faces_explain_slider = gr.ImageSlider(label="Photo | where the model looked", type="filepath")
                    faces_explained_textbox = gr.Textbox(label="Explained", interactive=False)
            with gr.Group(visible=not default.classifies_faces) as predictions_group:
                predictions_label = gr.Label(label="Predictions")
                status_markdown = gr.Markdown("")
                with gr.Accordion("What the model sees", open=False):
                    model_input_image = gr.Image(
                        label="The exact input after resizing and cropping", interactive=False
                    )
                with gr.Accordion("Explain: where did the model look?", open=False):
                    with gr.Row():
                        explain_label_dropdown = OpenDropdown(
                            choices=[], value=None, allow_custom_value=True, label="Class (empty: the top-1)"
                        )
                        # A dropdown, not a radio: the API takes "" for the default, and an unknown name gets our
                        # sentence rather than Gradio's.
                        explain_method_dropdown = OpenDropdown(
                            list(METHODS), value=DEFAULT_METHOD, allow_custom_value=True, label="Method"
                        )
                    explain_button = gr.Button("Explain")
                    explain_slider = gr.ImageSlider(label="Photo | where the model looked", type="filepath")
                    explained_label_textbox = gr.Textbox(label="Class explained", interactive=False)
                    with gr.Accordion("Relevance map (greyscale)", open=False):
                        explain_heatmap_image = gr.Image(label="Brighter: more relevant", interactive=False)
                    # /explain for API clients: the overlay alone rather than the slider's pair.
                    explain_overlay_image = gr.Image(visible=False)
                    explain_api_button = gr.Button(visible=False)

    classify_event = dict(
        fn=handlers.classify,
        inputs=[image_input, model_dropdown, top_k_slider],
        outputs=[predictions_label, status_markdown, model_input_image],
        **_task_limits(settings),
    )
    classify_button.click(**classify_event, api_name="classify")
    classify_as_is_button.click(**{**classify_event, "fn": handlers.classify_as_is}, api_name=False)
    faces_outputs = [faces_annotated_image, faces_json, faces_summary_markdown]
    faces_button.click(
        handlers.detect_faces,
        inputs=[image_input, model_dropdown, min_face_score_slider],
        outputs=faces_outputs,
        api_name="detect_faces",
        **_task_limits(settings),
    )
    faces_json.change(texts.face_rows, inputs=faces_json, outputs=faces_dataframe, api_name=False, queue=False)
    faces_explain_button.click(
        handlers.explain_faces_view,
        inputs=[image_input, model_dropdown, faces_explain_method_dropdown, min_face_score_slider],
        outputs=[faces_explain_slider, faces_explained_textbox],
        api_name=False,
        **_task_limits(settings),
    )
    explain_inputs = [image_input, model_dropdown, explain_label_dropdown, explain_method_dropdown]
    explain_button.click(
        handlers.explain_view,
        inputs=explain_inputs,
        outputs=[explain_slider, explain_heatmap_image, explained_label_textbox],
        api_name=False,
        **_task_limits(settings),
    )
    explain_api_button.click(
        handlers.explain,
        inputs=explain_inputs,
        outputs=[explain_overlay_image, explain_heatmap_image, explained_label_textbox],
        api_name="explain",
        **_task_limits(settings),
    )
    predictions_label.change(
        handlers.class_choices, inputs=predictions_label, outputs=explain_label_dropdown, api_name=False, queue=False
    )
    examples_dataset.click(
        lambda sample: sample[0], inputs=examples_dataset, outputs=image_input, api_name=False
    ).then(
        handlers.classify_example,
        inputs=[image_input, model_dropdown, top_k_slider, find_faces_checkbox, adapt_checkbox, min_face_score_slider],
        outputs=[predictions_label, status_markdown, model_input_image, *faces_outputs],
        api_name=False,
        **_task_limits(settings),
    )
    model_dropdown.change(
        handlers.select_model,
        inputs=model_dropdown,
        outputs=[model_card_markdown, examples_dataset, predictions_label, status_markdown, model_input_image],
        api_name="select_model",
        api_visibility="undocumented",  # the page's own: not an MCP tool, not in the API docs
    )
    gr.on(
        [model_dropdown.change, find_faces_checkbox.change, adapt_checkbox.change],
        _mode_updates,
        inputs=[model_dropdown, find_faces_checkbox, adapt_checkbox],
        outputs=[
            face_options_row,
            adapt_checkbox,
            classify_button,
            classify_as_is_button,
            faces_button,
            faces_group,
            predictions_group,
        ],
        api_name=False,
        queue=False,
    )
    return model_dropdown


def _mode_updates(model_key: str, find_faces: bool, adapt: bool) -> list:
    """Show the controls the model has (face search, adapter), the button of the mode, and its results."""
    entry = catalog_entry(model_key)  # None for a typed Hub id: no face search, no adapter
    mode = classify_mode(model_key, find_faces, adapt)
    faces = mode is ClassifyMode.FACES
    return [
        gr.Row(visible=bool(entry and entry.classifies_faces)),
        gr.Checkbox(visible=bool(entry and entry.input_adapter)),
        gr.Button(visible=mode is ClassifyMode.PLAIN),
        gr.Button(visible=mode is ClassifyMode.AS_IS),
        gr.Button(visible=faces),
        gr.Group(visible=faces),
        gr.Group(visible=not faces),
    ]


def _compare_tab(handlers: Handlers, settings: Settings) -> None:
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            compare_image_input = UploadedImage(
                type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=280
            )
            compare_models_checkboxes = _model_picker(
                settings, value=list(COMPARE_DEFAULT), multiselect=True, label="Models to compare"
            )
            compare_top_k_slider = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="Top-k predictions")
            compare_button = gr.Button("Compare", variant="primary")
            gr.Examples(
                examples=[
                    [str(EXAMPLES_DIR / name)]
                    for name in ("astronaut_face_mask.jpg", "astronaut_face.jpg", "chelsea.jpg")
                ],
                inputs=[compare_image_input],
                label="Examples",
            )
        with gr.Column(scale=2, min_width=300):
            compare_summary_markdown = gr.Markdown("")
            with gr.Row():
                compare_labels, compare_overlays, compare_columns = [], [], []
                for entry in CATALOG:
                    with gr.Column(min_width=220, visible=entry.key in COMPARE_DEFAULT) as column:
                        compare_labels.append(gr.Label(label=entry.title))
                        compare_overlays.append(
                            gr.Image(label=f"{entry.title}: where it looked for its top-1", interactive=False)
                        )
                    compare_columns.append(column)
                # Panels for models typed by visitors, filled in the order they were typed.
                hub_labels, hub_overlays, hub_columns = [], [], []
                for number in range(1, MAX_HUB_MODELS_COMPARED + 1):
                    with gr.Column(min_width=220, visible=False) as column:
                        hub_labels.append(gr.Label(label=f"Hub model {number}"))
                        hub_overlays.append(gr.Image(label="Where it looked for its top-1", interactive=False))
                    hub_columns.append(column)
    compare_inputs = [compare_image_input, compare_models_checkboxes, compare_top_k_slider]
    compare_button.click(
        handlers.compare_view,
        inputs=compare_inputs,
        outputs=[*compare_labels, compare_summary_markdown, *hub_labels],
        api_name=False,
        show_progress_on=[compare_summary_markdown],  # finished panels stay readable while others download
        **_task_limits(settings),
    ).then(
        handlers.compare_explanations,
        inputs=[compare_image_input, compare_models_checkboxes],
        outputs=[*compare_overlays, *hub_overlays],
        api_name=False,
        **_task_limits(settings),
    )
    # /compare for API clients keeps its outputs (a panel per catalog model, then the summary, which has every model's
    # top-1): the page's extra panels for typed models would change their shape.
    compare_api_button = gr.Button(visible=False)
    compare_api_button.click(
        handlers.compare,
        inputs=compare_inputs,
        outputs=[*compare_labels, compare_summary_markdown],
        api_name="compare",
        **_task_limits(settings),
    )
    compare_models_checkboxes.change(
        _compare_columns,
        inputs=compare_models_checkboxes,
        outputs=[*compare_columns, *hub_columns],
        api_name=False,
        queue=False,
    )


def _compare_columns(keys: list[str] | None) -> list:
    """A column for each catalog model chosen, then one for each model typed (up to the page's panels)."""
    return [gr.Column(visible=slot is not None) for slot in panel_slots(keys)]


def _batch_tab(handlers: Handlers, settings: Settings) -> None:
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            batch_files = ImageFiles(
                file_count="multiple",
                file_types=["image"],
                type="filepath",
                label=f"Images (up to {MAX_BATCH_FILES})",
                height=240,
            )
            batch_model_dropdown = _model_picker(settings, value=DEFAULT_MODEL_KEY, label="Model")
            batch_top_k_slider = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="Top-k predictions")
            batch_button = gr.Button("Classify all", variant="primary")
        with gr.Column(scale=2, min_width=300):
            batch_summary_markdown = gr.Markdown("")
            batch_dataframe = gr.Dataframe(headers=texts.BATCH_TABLE_HEADERS, interactive=False, wrap=True)
            batch_csv_file = gr.File(label="Results as CSV", interactive=False)
    batch_button.click(
        handlers.classify_batch,
        inputs=[batch_files, batch_model_dropdown, batch_top_k_slider],
        outputs=[batch_dataframe, batch_summary_markdown, batch_csv_file],
        api_name="classify_batch",
        show_progress_on=[batch_summary_markdown],  # the rows stay readable while the next ones arrive
        **_task_limits(settings),
    )


def _models_tab(handlers: Handlers, settings: Settings) -> tuple[gr.Timer, gr.Dataframe]:
    """The status panel; returns its refresh timer, which runs only while the tab is shown, and its table."""
    gr.Markdown(texts.memory_note(settings))
    # Filled when the tab is shown (a callable value would be an API endpoint and an MCP tool of its own).
    models_dataframe = gr.Dataframe(headers=texts.MODEL_TABLE_HEADERS, interactive=False)
    models_timer = gr.Timer(2.0, active=False)
    # Outside the queue: a status refresh must never wait behind, or crowd out, classification requests.
    models_timer.tick(
        handlers.model_table,
        outputs=models_dataframe,
        api_name="model_status",
        api_visibility="undocumented",  # the page's own: not an MCP tool, not in the API docs
        queue=False,
    )
    with gr.Row():
        prepare_dropdown = _model_picker(settings, value=DEFAULT_MODEL_KEY, label="Model", scale=2)
        prepare_button = gr.Button("Download and load now", scale=1)
    prepare_markdown = gr.Markdown("")
    prepare_button.click(
        handlers.prepare,
        inputs=prepare_dropdown,
        outputs=[prepare_markdown, models_dataframe],
        api_name="load_model",
        api_visibility="undocumented",
    )
    return models_timer, models_dataframe


def _timer_switch(active: bool):
    return lambda: gr.Timer(active=active)


def build_demo(service: DemoService) -> gr.Blocks:
    """Build the Blocks app. Nothing is downloaded or loaded until a visitor (or a preload) asks."""
    handlers, settings = Handlers(service), service.settings

    with gr.Blocks(title="BEiT image classification demo", delete_cache=(600, UPLOAD_LIFETIME_S)) as demo:
        gr.Markdown(
            "# Image classification with BEiT and DeiT\n"
            "Pick a model, upload, paste or snap a photo, and see what the model thinks it shows. "
            "Share a link to a model with `?model=KEY`, or to any image classifier on the Hub with "
            "`?model=owner/name`."
        )
        with gr.Tabs():
            with gr.Tab("Classify") as classify_tab:
                model_dropdown = _classify_tab(handlers, settings)
            with gr.Tab("Compare") as compare_tab:
                _compare_tab(handlers, settings)
            with gr.Tab("Batch") as batch_tab:
                _batch_tab(handlers, settings)
            with gr.Tab("Models") as models_tab:
                models_timer, models_dataframe = _models_tab(handlers, settings)
        for tab in (classify_tab, compare_tab, batch_tab, models_tab):
            tab.select(_timer_switch(tab is models_tab), outputs=models_timer, api_name=False)
        models_tab.select(handlers.model_table, outputs=models_dataframe, api_name=False, queue=False)
        demo.load(handlers.model_from_url, inputs=None, outputs=model_dropdown, api_name=False)
    return demo
