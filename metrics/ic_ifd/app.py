import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("ic_ifd")
launch_gradio_widget(module)
