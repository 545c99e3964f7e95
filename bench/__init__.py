"""orbench: measure LLM latency, tokens and cost per model and provider on your own prompts."""

__version__ = "0.1.0"

__all__ = ["__version__"]
