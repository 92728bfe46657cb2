"""Serving simulator: an OpenAI- and Ollama-compatible LLM server with a configurable,
precisely timed latency model, a vLLM-like scheduler, vLLM-named metrics and fault
injection. A test double for CI and the demo service of the smoke benchmark.
"""

from factorybench.sim.config import SimConfig
from factorybench.sim.server import SimServer, engine_of, make_app, serve

__all__ = ["SimConfig", "SimServer", "engine_of", "make_app", "serve"]
