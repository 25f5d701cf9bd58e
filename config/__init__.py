"""Settings and nothing else: one validated model per module, its sources, store and checker.

Every module's behaviour is driven by one frozen settings object. It is rebuilt as a whole from
its sources (defaults < YAML file < environment < twin desired properties) and swapped in only
when the whole result validates, so a module never runs on a half-applied change.
"""
