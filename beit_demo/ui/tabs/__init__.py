"""The page's tabs, one module each: its components, its events and its handlers. `beit_demo.ui.page` assembles them.

The Classify tab is the largest, so its two result panels (faces, explanation) are modules of their own.
"""
