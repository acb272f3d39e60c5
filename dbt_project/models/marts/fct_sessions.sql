{#- One row per session. Airkit (SessionId) and Track (session_id) name their sessions; Atomic
    and Altis events are cut per user at `session_gap_minutes` of inactivity.

    Exact under late data, whatever the order and grouping of windows, ASSUMING EVERY SESSION IS
    SHORTER THAN `session_lookback_hours` (24 h). For the window [lo, hi):
    - touched groups (source, session_group) = groups with events in the window, plus groups of
      the stored sessions that intersect the window in time (started_at < hi, ended_at >= lo):
      those may have lost events (a copy of an event moved to another hour, or vanished);
    - their sessions are recomputed from the events of [lo - lookback, hi + lookback);
    - emitted: the recomputed sessions that intersect the window in time, and those that overlap
      in time a stored session of the same group intersecting the window (the pieces of a stored
      session split by a vanished event, even outside the window). Both are whole: a session
      shorter than the lookback that intersects the window, or lies inside such a stored
      session, has all its events within the gathered range;
    - replaced: every stored session intersecting the window, plus every stored session of the
      same group that an emitted session overlaps (a late event can extend or merge sessions).
    So a stored session whose events moved or vanished is deleted or recomputed, and a re-run
    of a range heals what an earlier failed run left. A session longer than the lookback breaks
    the assumption: it can be cut at the edge of the gathered events. -#}
{%- set w = window() -%}
{%- set around = window(before_hours=var('session_lookback_hours'), after_hours=var('session_lookback_hours')) -%}
{%- set gap = var('session_gap_minutes') -%}
{%- set intersects_window = "started_at < " ~ ts(w.hi) ~ " and ended_at >= " ~ ts(w.lo) -%}
{{ config(
    incremental_strategy='replace',
    replace_where="(DBT_INTERNAL_DEST.started_at < {hi} and DBT_INTERNAL_DEST.ended_at >= {lo})
        or exists (select 1 from DBT_INTERNAL_SOURCE s where s.source = DBT_INTERNAL_DEST.source
        and s.session_group = DBT_INTERNAL_DEST.session_group
        and DBT_INTERNAL_DEST.started_at <= s.ended_at and DBT_INTERNAL_DEST.ended_at >= s.started_at)",
) }}

with events as (
    select 'airkit' as source, session_id as session_group, null as user_id, app_name as app,
           event_ts, event_hour, device_class,
           event_name = 'PageView' as is_page_view, csat_score, time_on_page_seconds, action_runs
    from {{ staging('stg_airkit__events', around) }}
    where category = 'Session' and session_id is not null and {{ in_window(around) }}
    union all
    select 'track', session_id, user_id, platform, event_ts, event_hour, device_class,
           category = 'page_view', null, null, null
    from {{ staging('stg_track__events', around) }}
    where session_id is not null and {{ in_window(around) }}
    union all
    select 'atomic', end_user_id, end_user_id, platform, event_ts, event_hour, device_class,
           analytics_event = 'stream-displayed', null, null, null
    from {{ staging('stg_atomic__events', around) }}
    where is_sdk_event and not is_test and end_user_id is not null and {{ in_window(around) }}
    union all
    select 'altis', endpoint_id, coalesce(endpoint_user_id, endpoint_id), blog_id, event_ts, event_hour, device_class,
           event_name = 'pageView', null, null, null
    from {{ staging('stg_altis__events', around) }}
    where {{ in_window(around) }}
),

stored as (
    -- The stored sessions this window replaces: those intersecting it in time.
    {% if is_incremental() %}
    select source, session_group, started_at, ended_at from {{ this }} where {{ intersects_window }}
    {% else %}
    select null::varchar as source, null::varchar as session_group, null::timestamp as started_at,
           null::timestamp as ended_at
    where false
    {% endif %}
),

touched as (
    select source, session_group from events where {{ in_window(w) }}
    union
    select source, session_group from stored
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
        max(user_id) as user_id,
        mode(app) as app,
        mode(device_class) as device_class,
        arg_max(csat_score, event_ts) filter (where csat_score is not null) as csat_score,
        sum(time_on_page_seconds) as time_on_page_seconds,
        max(action_runs) as action_runs
    from numbered
    group by all
),

emitted as (
    select s.* from sessions s
    where {{ intersects_window }}
       or exists (select 1 from stored t where t.source = s.source and t.session_group = s.session_group
                  and s.started_at <= t.ended_at and s.ended_at >= t.started_at)
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
from emitted
