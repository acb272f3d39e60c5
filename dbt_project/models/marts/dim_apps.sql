-- Airkit applications: name as last seen in any of their events.
{{ config(incremental_strategy='delete+insert', unique_key='app_id') }}
{{ dimension('app_id', ['app_name'], ref('stg_airkit__events'), 'event_ts') }}
