{#- Per event hour × source × app × platform × event name (× test flag): events, errors and
    distinct users, for every source. -#}
{%- set w = window() -%}
{{ config(
    incremental_strategy='replace',
    replace_where="event_hour >= {lo} and event_hour < {hi}",
) }}

with events as (
    select 'airkit' as source, coalesce(app_name, app_id, 'unknown') as app, coalesce(user_agent_os, 'unknown') as platform,
           event_name, false as is_test, event_ts, level = 'Error' or outcome = 'Failure' as is_error,
           coalesce(actor_id, session_id) as user_key
    from {{ staging('stg_airkit__events', w) }} where {{ in_window(w) }}
    union all
    select 'track', coalesce(client_id, 'unknown'), platform, event_name, false, event_ts, is_error, coalesce(user_id, session_id)
    from {{ staging('stg_track__events', w) }} where {{ in_window(w) }}
    union all
    select 'atomic', coalesce(stream_id, 'unknown'), platform, event_name, is_test, event_ts, is_error, end_user_id
    from {{ staging('stg_atomic__events', w) }} where {{ in_window(w) }}
    union all
    select 'altis', coalesce(blog_id, 'unknown'), platform, event_name, false, event_ts, false, endpoint_id
    from {{ staging('stg_altis__events', w) }} where {{ in_window(w) }}
    union all
    select 'omny', coalesce(program_name, program_id), coalesce(download_source, 'unknown'), 'download', false,
           downloaded_at, false, listener_key
    from {{ staging('stg_omny__downloads', w) }} where {{ in_window(w, ts_column='downloaded_at') }}
)

select
    date_trunc('hour', event_ts) as event_hour,
    source,
    app,
    platform,
    event_name,
    is_test,
    count(*) as events,
    count_if(coalesce(is_error, false))::bigint as errors,
    count(distinct user_key) as distinct_users
from events
group by all
