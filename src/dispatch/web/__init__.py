"""The people's side: the dispatcher console (/console/) and the technician app (/tech/).

Static files served by the API's own process: no front-end server, no build step. The pages
call the public ``/v1`` API with the user's key, like any other client."""
