"""The Gradio app: the page's data (`page.py`, tested without a server), its layout and server
(`layout.py`), and the load harness that drives a running app over HTTP (`load.py`)."""
