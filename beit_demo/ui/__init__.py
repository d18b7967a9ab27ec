"""The Gradio front end: layout, handlers that call the service, and the texts they show."""
