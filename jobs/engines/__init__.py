"""The engine sessions the drivers run on: Spark (spark, spark_tasks) and vLLM engines in Ray actors (vllm_actors)."""
