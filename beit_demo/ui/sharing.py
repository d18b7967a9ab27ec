"""Share a result as a link: the button under a tab's results, and the page load that opens such a link.

What is shared is what the server answered this visitor, never what the page sends back: each tab remembers its
latest results per session (`Sharing.remember`, paths in Gradio's cache and small data), and the button copies them
into the share store (`beit_demo.share_store`), pictures re-encoded, under a fresh id. The link carries that id, the
tab and its settings (``?tab=classify&model=...&share=ID``), so an expired result still restores the model and the
settings. Opening it fills the tab from the store, without running a model.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr
from gradio.utils import get_icon_path, get_upload_folder
from PIL import Image

from beit_demo.config import Settings
from beit_demo.errors import DemoError, ImageLoadError, InvalidRequestError
from beit_demo.images import load_image
from beit_demo.share_store import MAX_SIDE, InvalidShareId, ShareRate, ShareStore, StoredShare

SHARE_BUTTON = "Share as link"  # its accessible name says "share" and "link"
EXPIRED = "This shared result has expired; the model and settings are restored."
UNAVAILABLE = "Shared results cannot be kept on this server right now (its share folder cannot be written)."
MAX_SESSIONS = 1024  # sessions whose latest results are remembered (least recently active forgotten first)
# Run after the link is made: the page's own address with the link's query, to the clipboard and the text box.
COPY_LINK_JS = """(query) => {
    if (!query || !query.startsWith("?")) return query;
    const url = new URL(window.location.href);
    url.search = query;
    url.hash = "";
    const link = url.toString();
    if (navigator.clipboard) navigator.clipboard.writeText(link).catch(() => {});
    return link;
}"""


@dataclass
class Snapshot:
    """What a share holds: the link's settings, the results as data, and the pictures and text files they name."""

    settings: dict
    results: dict
    pictures: dict[str, str | Image.Image] = field(default_factory=dict)  # a path in Gradio's cache, or an image
    texts: dict[str, str] = field(default_factory=dict)  # a path in Gradio's cache (report.json, rows.csv)


@dataclass
class Restorer:
    """A tab's half of sharing: its parts make a snapshot, a share (or the link's settings alone) fills its outputs."""

    tab: str
    snapshot: Callable[[dict], Snapshot]  # the tab's remembered parts -> what to store
    restore: Callable[[dict, StoredShare | None], dict]  # (the settings, the share or None) -> the tab's updates
    outputs: list


class Sharing:
    """The share store, the per-visitor rate, and each session's latest results per tab."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = ShareStore(Path(settings.share_dir), settings.share_max_bytes, settings.share_days * 86_400)
        self.rate = ShareRate(settings.shares_per_minute)
        self.restorers: dict[str, Restorer] = {}
        self._latest: OrderedDict[tuple[str, str], _Latest] = OrderedDict()
        self._lock = threading.Lock()

    # -- remembering ----------------------------------------------------------------------------------------------

    def remember(self, request: gr.Request | None, tab: str, part: str, value: dict, *, new: bool = False) -> None:
        """Keep ``value`` as part ``part`` of this session's latest results in ``tab``; ``new`` forgets the others
        (a new result makes an explanation of the last one stale)."""
        session = getattr(request, "session_hash", None)
        if not session:
            return  # a direct call (tests, scripts): nothing to share later
        with self._lock:
            previous = self._latest.pop((session, tab), _Latest())
            self._latest[(session, tab)] = _Latest({**({} if new else previous.parts), part: value})
            while len(self._latest) > MAX_SESSIONS:
                self._latest.popitem(last=False)

    def latest(self, request: gr.Request | None, tab: str) -> _Latest:
        """This session's latest results in ``tab`` (empty when none)."""
        session = getattr(request, "session_hash", None)
        with self._lock:
            return self._latest.get((session, tab), _Latest())

    def _keep_link(self, request: gr.Request | None, tab: str, link: str) -> None:
        session = getattr(request, "session_hash", None)
        if session:
            with self._lock:
                self._latest[(session, tab)] = _Latest(link=link)

    # -- sharing ------------------------------------------------------------------------------------------------

    def button(self, tab: str) -> None:
        """The button and the link's text box, under a tab's results (call inside the tab's layout)."""
        button = gr.Button(SHARE_BUTTON, icon=get_icon_path("link.svg"), size="sm", variant="secondary")
        link = gr.Textbox(
            label="Link to this result", visible=False, interactive=False, buttons=["copy"], elem_classes="share-link"
        )

        def share(request: gr.Request) -> gr.Textbox:
            return self.share(tab, request)

        button.click(share, inputs=None, outputs=link, api_name=False, queue=False).then(
            None, inputs=link, outputs=link, js=COPY_LINK_JS, api_name=False, queue=False
        )

    def share(self, tab: str, request: gr.Request) -> gr.Textbox:
        """Store this visitor's latest results of ``tab``; return the link's query (made a full link in the page)."""
        latest = self.latest(request, tab)
        try:
            if latest.link and self.store.has(latest.link.rsplit("share=", 1)[1]):
                return gr.Textbox(value=latest.link, visible=True)  # shared already: the same link, no second copy
            if not latest.parts:
                raise InvalidRequestError("Run the model first: there is no result to share yet.")
            snapshot = self.restorers[tab].snapshot(latest.parts)
            self.rate.take(_visitor(request))
            pictures = {name: _picture(value, self.settings.max_pixels) for name, value in snapshot.pictures.items()}
            texts = {name: _text(path) for name, path in snapshot.texts.items()}
            record = {"tab": tab, "settings": snapshot.settings, "results": snapshot.results}
            share_id = self.store.save(record, pictures, texts)
        except DemoError as err:
            raise gr.Error(str(err)) from None
        except OSError:  # the share folder cannot be written (read-only, full): the server's, not the visitor's
            raise gr.Error(UNAVAILABLE) from None
        latest.link = link_query(tab, snapshot.settings, share_id)
        return gr.Textbox(value=latest.link, visible=True)

    # -- opening a link -----------------------------------------------------------------------------------------

    def wire(self, blocks: gr.Blocks, tabs: gr.Tabs, keys: list[str], notice: gr.Markdown) -> None:
        """One page load that selects the link's tab and restores it (after every tab registered its restorer)."""
        self._notice, self._tabs, self._tab_keys = notice, tabs, set(keys)
        outputs = [notice, tabs, *(output for restorer in self.restorers.values() for output in restorer.outputs)]
        blocks.load(self.open_link, inputs=None, outputs=outputs, api_name=False)

    def open_link(self, request: gr.Request) -> dict:
        """The page's updates for its address: ``?tab=``, ``?share=`` and the tab's settings."""
        params: dict = {}
        for name, value in request.query_params.multi_items() if request else []:
            params[name] = [*_as_list(params[name]), value] if name in params else value
        tab = params.get("tab", "classify")  # ?model=KEY alone (older links) names the Classify tab's model
        tab = tab if isinstance(tab, str) else ""
        updates: dict = {}
        stored, notice = None, ""
        if "share" in params:
            try:
                stored = self.store.open(params["share"])
            except InvalidShareId as err:
                notice = str(err)
            except OSError:
                notice = UNAVAILABLE
            else:
                if stored is None or stored.record.get("tab") != tab:
                    stored, notice = None, EXPIRED
        if tab in self.restorers:
            try:  # a share's own settings, else the link's
                updates.update(self.restorers[tab].restore(stored.record["settings"] if stored else params, stored))
                if stored is not None:  # shared again from here: the same link
                    self._keep_link(request, tab, link_query(tab, stored.record["settings"], stored.share_id))
            except (DemoError, OSError, LookupError, TypeError, ValueError):  # a share damaged on disk: as if expired
                updates, notice = self.restorers[tab].restore(params, None), EXPIRED
        if "tab" in params and tab in self._tab_keys:
            updates[self._tabs] = gr.Tabs(selected=tab)
        updates[self._notice] = gr.Markdown(value=notice and f"**{notice}**", visible=bool(notice))
        return updates


@dataclass
class _Latest:
    """A session's latest results in one tab, by part ("result", "explanation", ...), and its link once shared."""

    parts: dict = field(default_factory=dict)
    link: str | None = None


def link_query(tab: str, settings: dict, share_id: str) -> str:
    """``?tab=...&<settings>&share=ID``; a list setting repeats its name (``model=a&model=b``)."""
    return "?" + urlencode([("tab", tab), *_pairs(settings), ("share", share_id)])


def link_number(value: object, low: float, high: float, whole: bool = False) -> float | int | None:
    """A link's number when it is one within [low, high], else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not low <= number <= high:
        return None
    return round(number) if whole else number


def link_flag(value: object) -> bool | None:
    """A link's yes/no (1, 0, true, false), else None."""
    text = str(value).strip().lower()
    return True if text in {"1", "true"} else False if text in {"0", "false"} else None


def _pairs(settings: dict) -> list[tuple[str, str]]:
    pairs = []
    for name, value in settings.items():
        values = value if isinstance(value, list) else [value]
        pairs += [(name, str(int(item) if isinstance(item, bool) else item)) for item in values]
    return pairs


def restored_file(stored: StoredShare, name: str, file_name: str | None = None) -> str:
    """A copy of a stored file in Gradio's cache, for the page (the store itself is never served)."""
    source = stored.files.get(name)
    if source is None:
        raise InvalidRequestError(f"the share has no {name}")
    folder = Path(get_upload_folder()) / "opened-links" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / (file_name or name)
    shutil.copyfile(source, target)
    return str(target)


def _picture(value: str | Image.Image, max_pixels: int) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    try:
        return load_image(value, max_pixels=max_pixels, min_size=MAX_SIDE)  # a JPEG decodes at a reduced scale
    except (OSError, ImageLoadError):
        raise InvalidRequestError(
            "This result's files have expired on the server; run the model again, then share."
        ) from None


def _text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        raise InvalidRequestError(
            "This result's files have expired on the server; run the model again, then share."
        ) from None


def _visitor(request: gr.Request) -> str:
    """Who is sharing: the address the request came from (behind a proxy, the first forwarded one)."""
    forwarded = (request.headers.get("x-forwarded-for") or "").split(",")[0].strip()
    return forwarded or getattr(request.client, "host", "") or "unknown"


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]
