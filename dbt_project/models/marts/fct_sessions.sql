{#- One row per session. Airkit (SessionId) and Track (session_id) name their sessions; Atomic
    and Altis events are cut per user at `session_gap_minutes` of inactivity.
    A session is recomputed whole whenever one of its events is in the window: events of the
    same sessions / users are gathered `session_lookback_hours` around it, and stored sessions
    they overlap (a late event can extend or merge sessions) are replaced. -#}
{%- set w = window() -%}
{%- set around = window(before_hours=var('session_lookback_hours'), after_hours=var('session_lookback_hours')) -%}
{%- set gap = var('session_gap_minutes') -%}
{{ config(
    incremental_strategy='replace',
    replace_where="exists (select 1 from DBT_INTERNAL_SOURCE s where s.source = DBT_INTERNAL_DEST.source
        and s.session_group = DBT_INTERNAL_DEST.session_group
        and DBT_INTERNAL_DEST.started_at <= s.ended_at and DBT_INTERNAL_DEST.ended_at >= s.started_at)",
) }}

with events as (
    select 'airkit' as source, session_id as session_group, null as user_id, app_name as app,
           event_ts, event_hour, device_class,
           event_name = 'PageView' as is_page_view, csat_score, time_on_page_seconds, action_runs
    from {{ ref('stg_airkit__events') }}
    where category = 'Session' and session_id is not null and {{ in_window(around) }}
    union all
    select 'track', session_id, user_id, platform, event_ts, event_hour, device_class,
           category = 'page_view', null, null, null
    from {{ ref('stg_track__events') }}
    where session_id is not null and {{ in_window(around) }}
    union all
    select 'atomic', end_user_id, end_user_id, platform, event_ts, event_hour, device_class,
           analytics_event = 'stream-displayed', null, null, null
    from {{ ref('stg_atomic__events') }}
    where is_sdk_event and not is_test and end_user_id is not null and {{ in_window(around) }}
    union all
    select 'altis', endpoint_id, coalesce(endpoint_user_id, endpoint_id), blog_id, event_ts, event_hour, device_class,
           event_name = 'pageView', null, null, null
    from {{ ref('stg_altis__events') }}
    where {{ in_window(around) }}
),

touched as (
    select distinct source, session_group from events where {{ in_window(w) }}
),

numbered as (
    select e.*,
        case when e.source in ('atomic', 'altis') then
            sum(case when prev_ts is null or event_ts - prev_ts > interval {{ gap }} minute then 1 else 0 end)
                over (partition by e.source, e.session_group order by event_ts rows unbounded preceding)
        else 1 end as session_number
    from (
        select e.*, lag(event_ts) over (partition by e.source, e.session_group order by event_ts) as prev_ts
        from events e join touched using (source, session_group)
    ) e
),

sessions as (
    select
        source,
        session_group,
        session_number,
        min(event_ts) as started_at,
        max(event_ts) as ended_at,
        count(*) as events,
        count_if(coalesce(is_page_view, false))::bigint as page_views,
        count_if({{ in_window(w) }}) as events_in_window,
        max(user_id) as user_id,
        mode(app) as app,
        mode(device_class) as device_class,
        arg_max(csat_score, event_ts) filter (where csat_score is not null) as csat_score,
        sum(time_on_page_seconds) as time_on_page_seconds,
        max(action_runs) as action_runs
    from numbered
    group by all
)

select
    md5(source || '|' || session_group || case when source in ('atomic', 'altis')
        then '|' || strftime(started_at, '%Y-%m-%dT%H:%M:%S.%f') else '' end) as session_key,
    source,
    case when source in ('airkit', 'track') then session_group end as session_id,
    session_group,
    user_id,
    app,
    started_at,
    ended_at,
    date_diff('millisecond', started_at, ended_at) / 1000.0 as duration_seconds,
    events,
    page_views,
    device_class,
    csat_score,
    time_on_page_seconds,
    action_runs
from sessions
where events_in_window > 0
