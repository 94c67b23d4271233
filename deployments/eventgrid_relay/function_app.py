"""The relay as an Azure Function (Python v2 programming model), an HTTP endpoint that an
Event Grid subscription on the storage account delivers to (webhook endpoint type).

Deploy this folder with `func azure functionapp publish <app>`; set PREFECT_API_URL (and
PREFECT_API_AUTH_STRING, MLOPS_SPEC_PATH, MLOPS_WATCH_PREFIX) in the app's settings. See
docs/local-stack.md, "New data in production (Event Grid)".
"""

import json

import azure.functions as func
from relay import handle

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="eventgrid", methods=["POST"])
def eventgrid(req: func.HttpRequest) -> func.HttpResponse:
    reply = handle(req.get_body())
    return func.HttpResponse(
        json.dumps(reply.body), status_code=reply.status, mimetype="application/json"
    )
