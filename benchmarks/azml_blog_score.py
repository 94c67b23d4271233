"""Baseline 1: a score.py written the way Azure's blog posts and samples do it.

json -> pandas DataFrame -> pipeline (scaler and model inside) -> predict -> JSON string. No
dtype handling, no column matching, a new DataFrame and a json round trip per request. Run by
azmlinfsrv in the benchmark only.
"""

import glob
import json
import os

import pandas as pd
import skops.io as sio

model = None


def init():
    global model
    path = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "model.skops"),
                     recursive=True)[0]
    with open(path, "rb") as fh:
        data = fh.read()
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))


def run(raw_data):
    data = json.loads(raw_data)["input_data"]
    frame = pd.DataFrame(data["data"], columns=data["columns"])
    predictions = model.predict(frame)
    return json.dumps({"predictions": predictions.tolist()})
