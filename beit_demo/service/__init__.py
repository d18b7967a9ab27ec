"""The demo's tasks behind one facade that knows no front end.

The Gradio handlers, the MCP tools (the public endpoints), the command line and the Ray workers call `DemoService`;
none of them re-implements borrow -> run -> time -> report. `DemoService` is the shared runtime (`core`) with one thin
method per task; each task's body and result types are a module of this package (`classify`, `faces`, `explain`,
`compare`, `files`, `evaluate`, `live`, `models`). Everything is plain data in and out: the texts a visitor reads are
built from it by `beit_demo.ui.texts`, and a `DemoError` raised here is shown by the front end as it is.
"""

from __future__ import annotations

from beit_demo.service import classify as classify_task
from beit_demo.service import compare as compare_task
from beit_demo.service import evaluate as evaluate_task
from beit_demo.service import explain as explain_task
from beit_demo.service import faces as faces_task
from beit_demo.service import files as files_task
from beit_demo.service import live as live_task
from beit_demo.service import models as models_task
from beit_demo.service.classify import Classification
from beit_demo.service.compare import MAX_HUB_MODELS_COMPARED, CompareOutcome, Comparison
from beit_demo.service.core import MAX_TOP_K, ImageInput, ServiceCore, WeightsOrigin, parse_face_score, parse_top_k
from beit_demo.service.evaluate import EvaluatedImage, Evaluation, EvaluationReport, Reading
from beit_demo.service.explain import MAX_EXPLAINED_FACES, Explanation
from beit_demo.service.faces import DEFAULT_FACE_SCORE, FaceReport
from beit_demo.service.files import FileResult
from beit_demo.service.live import LiveAnswer, LiveSession
from beit_demo.service.models import CatalogStatus

__all__ = [
    "DEFAULT_FACE_SCORE",
    "MAX_EXPLAINED_FACES",
    "MAX_HUB_MODELS_COMPARED",
    "MAX_TOP_K",
    "CatalogStatus",
    "Classification",
    "CompareOutcome",
    "Comparison",
    "DemoService",
    "EvaluatedImage",
    "Evaluation",
    "EvaluationReport",
    "Explanation",
    "FaceReport",
    "FileResult",
    "ImageInput",
    "LiveAnswer",
    "LiveSession",
    "Reading",
    "WeightsOrigin",
    "parse_face_score",
    "parse_top_k",
]


class DemoService(ServiceCore):
    """Classify, find faces, explain, compare, evaluate, answer a live camera and manage models, for any front end.

    The shared runtime (`ServiceCore`: settings, registry, batcher, entry lookup, decoding) with each task's function
    as a method: a task is written once, in its module, with ``core`` as its first argument, and named here.
    """

    classify = classify_task.classify
    detect_faces = faces_task.detect_faces
    explain = explain_task.explain
    explain_faces = explain_task.explain_faces
    compare = compare_task.compare
    classify_files = files_task.classify_files
    evaluate = evaluate_task.evaluate
    live_frame = live_task.live_frame
    prepare = models_task.prepare
    model_status = models_task.model_status
    preload = models_task.preload
    remove_orphaned_downloads = staticmethod(models_task.remove_orphaned_downloads)
