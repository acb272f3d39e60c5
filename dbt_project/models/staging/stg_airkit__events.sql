-- Airkit session, audit and platform events. `actor_email` (restricted) is left out.
{{ stg_airkit__events_sql(lake_events('airkit')) }}
