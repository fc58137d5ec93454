"""The twin's HTTP API: one APIRouter per resource, pydantic models at the edge, the engine behind it."""
