"""Tool modules as a team's package would hold them, loaded by tests through HANDOFF_TOOL_MODULES."""
