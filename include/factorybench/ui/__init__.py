"""The benchmarks inside Airflow's UI: what the plugin registers (`factorybench.ui.plugin`, free to
import), the FastAPI app it mounts at /factorybench (`factorybench.ui.app`, built on its first
request), and the live-progress data path of a run's Benchmark tab (`factorybench.ui.progress`)."""
