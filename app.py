"""Entry point for the Space (and `python app.py` locally): builds the demo and serves it."""

from starlette.middleware import Middleware

from beit_demo.config import Settings
from beit_demo.service import DemoService
from beit_demo.ui.body_limit import BodyLimit
from beit_demo.ui.page import EXAMPLES_DIR, build_demo, page_head

settings = Settings.from_env()
service = DemoService(settings)
demo = build_demo(service)


def main() -> None:
    """Serve the demo; preload models in the background once the page is up."""
    service.remove_orphaned_downloads()
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.launch(
        server_name=settings.server_name,
        server_port=settings.server_port,
        max_file_size=settings.max_file_size,
        allowed_paths=[str(EXAMPLES_DIR)],
        enable_monitoring=False,
        head=page_head(settings),  # a shared link's preview: the title and, on a Space, the screenshot
        mcp_server=True,  # the public endpoints as MCP tools, at /gradio_api/mcp/ (README, "MCP")
        prevent_thread_lock=True,
        # Bodies past the cap are refused before any route reads them (README, "Security and limits").
        app_kwargs={"middleware": [Middleware(BodyLimit, max_file_size=settings.max_file_size)]},
    )
    if settings.preload:
        service.preload(settings.preload)
    demo.block_thread()


if __name__ == "__main__":
    main()
