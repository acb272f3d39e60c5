-- Altis page analytics. `endpoint_id` (one device + browser) is the user sessions are cut by.
{{ stg_altis__events_sql(lake_events('altis')) }}
