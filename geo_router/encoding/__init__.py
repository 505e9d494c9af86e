"""One encoder per answer type: routing answers, single points and batches as JSON bytes.

The API, the CLI, the report record and the registry all encode through here; nothing else
builds the routing answer's JSON shape.
"""
