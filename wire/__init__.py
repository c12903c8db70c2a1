"""The typed wire contract of the OpSeal HTTP API, shared by the server and the client.

Every request and response body (and every WebSocket stream message) is a msgspec
``Struct`` defined once here, with the limits and patterns the server enforces as ``Meta``
constraints. The server decodes requests and encodes answers through them; a client decodes
answers through them; :mod:`.openapi` generates the OpenAPI document from them and the route
table in :mod:`.endpoints`; :mod:`.errors` is the one table of error codes.

This package imports nothing from ``opseal.server`` or ``opseal.client``.

Modules: :mod:`.scalars` (constrained scalar types), :mod:`.base` (request and response
bases), :mod:`.identity`, :mod:`.operations`, :mod:`.blobs`, :mod:`.audit`, :mod:`.ops`,
:mod:`.stream` (bodies by topic), :mod:`.errors`, :mod:`.endpoints`, :mod:`.decode`,
:mod:`.openapi`.
"""

# Nothing is imported here: `opseal --help` reads only the error table (.errors), and
# msgspec and the route table cost it ~20 ms (issue 10). Import the submodules by name.
