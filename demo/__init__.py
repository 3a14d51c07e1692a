"""The Gradio layer: handlers that parse input, call the library and format output."""

from demo.config import AppConfig, configure_torch, parse_config
from demo.layout import build_demo, launch_kwargs

__all__ = ["AppConfig", "build_demo", "configure_torch", "launch_kwargs", "parse_config"]
