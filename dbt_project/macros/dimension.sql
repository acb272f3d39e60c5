{#- Marts whose row per key aggregates every event of the key, however far apart in time (the
    dimensions, the card funnel), kept exact under late data without rescanning the lake.

    Each such mart keeps a state table, `intermediate.<model>_hourly` (the schema is created by
    dbt_project.yml's on-run-start): one row per event hour and key, with the partial aggregates
    of that hour's events of the key. A window [lo, hi), widened to whole hours:
    - recomputes the partials of its hours from the events layer (`fresh`);
    - touched keys = the keys of the fresh partials, plus the keys of the stored partials of
      those hours (keys whose events moved to another hour or vanished);
    - rebuilds the row of each touched key from its fresh partials and its stored partials of
      the other hours; a touched key left without any partial gets no row;
    - replaces (strategy 'replace') the mart rows of the touched keys, then, in a post-hook of
      the same transaction, the state's rows of the window's hours.
    So a mart row equals the aggregate of all its key's events in the events layer, whatever the
    order and grouping of windows, and a failed run changes neither table. The final aggregates
    must combine the hourly partials exactly (min, max, bool_or, the value at the latest time:
    hours are disjoint). A first build (or --full-refresh) starts the state empty; an incremental
    run that finds no state (a warehouse built before it existed) builds it once from the whole
    events layer. The state is internal to the mart: it is not a dbt model (nor a Dagster asset). -#}

{#- The partial aggregates per event hour and key of the events of `relation` matching `filter`. -#}
{% macro _hourly_partials(relation, key, key_sql, ts_column, partials, where, filter) -%}
select date_trunc('hour', {{ ts_column }}) as partial_hour, {{ key_sql }} as {{ key }},
    {%- for name, expr in partials %}
    {{ expr }} as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
from {{ relation }}
where {{ key_sql }} is not null and ({{ where }}) and ({{ filter }})
group by all
{%- endmacro %}

{#- `partials`: [column, aggregate of one key's events in one hour]; `finals`: [column, aggregate
    of the key's partials] — the mart's columns after the key, in order. -#}
{% macro hourly_fold(key, from_model, ts_column, partials, finals, key_sql=none, where='true') -%}
{%- set key_sql = key_sql or key -%}
{%- set hours = window(whole_hours=true) -%}
{%- set state = 'intermediate.' ~ this.identifier ~ '_hourly' -%}
{%- set in_hours = "partial_hour >= " ~ ts(hours.lo) ~ " and partial_hour < " ~ ts(hours.hi) -%}
{%- set window_events = in_window(hours, ts_column=ts_column) -%}
{#- The config is fixed when dbt parses the project, without the run's window: hooks are rendered
    when they run, so `ref`, `is_incremental()` and the window are left for then, and the replace
    strategy fills in the window's {lo} and {hi} (macros/incremental_replace.sql). -#}
{%- set hook_relation = "{{ ref('" ~ from_model ~ "') }}" -%}
{%- set hook_window_relation = "{{ staging('" ~ from_model ~ "', window(whole_hours=true)) }}" -%}
{%- set hook_in_hours = "partial_hour >= {{ ts(window(whole_hours=true).lo) }} and partial_hour < {{ ts(window(whole_hours=true).hi) }}" -%}
{%- set hook_window_events = "{{ in_window(window(whole_hours=true), ts_column='" ~ ts_column ~ "') }}" -%}
{{ config(
    incremental_strategy='replace',
    replace_where="DBT_INTERNAL_DEST." ~ key ~ " in (select " ~ key ~ " from DBT_INTERNAL_SOURCE)
        or DBT_INTERNAL_DEST." ~ key ~ " in (select " ~ key ~ " from " ~ state ~ " where partial_hour >= {lo} and partial_hour < {hi})",
    replace_window={'whole_hours': true},
    pre_hook=[
        "{% if is_incremental() and load_relation(api.Relation.create(database=this.database, schema='intermediate', identifier='"
            ~ this.identifier ~ "_hourly')) is not none %}select 1 /* the state is there */"
            ~ "{% elif is_incremental() %}create table if not exists " ~ state ~ " as "
            ~ _hourly_partials(hook_relation, key, key_sql, ts_column, partials, where, 'true')
            ~ "{% else %}create or replace table " ~ state ~ " as "
            ~ _hourly_partials(hook_relation, key, key_sql, ts_column, partials, where, 'false')
            ~ "{% endif %}",
    ],
    post_hook=[
        "delete from " ~ state ~ " where " ~ hook_in_hours,
        "insert into " ~ state ~ " by name "
            ~ _hourly_partials(hook_window_relation, key, key_sql, ts_column, partials, where, hook_window_events),
    ],
) }}

with fresh as (
    {{ _hourly_partials(staging(from_model, hours), key, key_sql, ts_column, partials, where, window_events) }}
),

touched as (
    select {{ key }} from fresh
    union
    select {{ key }} from {{ state }} where {{ in_hours }}
),

parts as (
    select * from fresh
    union all by name
    select * from {{ state }}
    where not ({{ in_hours }}) and {{ key }} in (select {{ key }} from touched)
)

select
    {{ key }},
    {%- for name, expr in finals %}
    {{ expr }} as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
from parts
group by {{ key }}
{%- endmacro %}

{#- A dimension: per key, the attributes of its latest event that carries them and when it was
    first and last seen, over every event of the key (an hourly fold, above). -#}
{% macro dimension(key, attributes, from_model, seen_at, where='true') -%}
{%- set partials = [] -%}
{%- set finals = [] -%}
{%- for a in attributes -%}
    {%- do partials.append([a, "arg_max(" ~ a ~ ", " ~ seen_at ~ ") filter (where " ~ a ~ " is not null)"]) -%}
    {%- do finals.append([a, "arg_max(" ~ a ~ ", last_seen_at) filter (where " ~ a ~ " is not null)"]) -%}
{%- endfor -%}
{%- do partials.extend([["first_seen_at", "min(" ~ seen_at ~ ")"], ["last_seen_at", "max(" ~ seen_at ~ ")"]]) -%}
{%- do finals.extend([["first_seen_at", "min(first_seen_at)"], ["last_seen_at", "max(last_seen_at)"]]) -%}
{{ hourly_fold(key, from_model, seen_at, partials, finals, where=where) }}
{%- endmacro %}
