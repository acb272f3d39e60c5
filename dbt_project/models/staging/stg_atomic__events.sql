-- Atomic analytics events. `is_test`: cards sent from the Workbench test tools
-- (triggerEventSource = test) are flagged, never mixed with live ones.
{{ stg_atomic__events_sql(lake_events('atomic')) }}
