-- Airkit applications: name as last seen in any of their events (an hourly fold: macros/dimension.sql).
{{ dimension('app_id', ['app_name'], 'stg_airkit__events', 'event_ts') }}
