"""LLM stages: an OpenAI-compatible client with cache, retries and strict JSON parsing; prompts with the
scene graph as quoted data; MMEvol-style evolution with a rule guard; a rubric judge."""
