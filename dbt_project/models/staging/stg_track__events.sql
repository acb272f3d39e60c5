-- Track Events API events. The user is `properties.user_id` when the client sent one; device
-- class and platform come from the user agent.
{{ stg_track__events_sql(lake_events('track')) }}
