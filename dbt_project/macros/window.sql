{#- The Dagster partition window: vars `min_date` / `max_date`, ISO strings, half-open [min, max).
    `window(before_hours, after_hours, whole_days, whole_hours)` widens it for lookbacks, daily grains and hourly states and
    returns {lo, hi} as naive UTC datetimes. -#}

{% macro _utc(text) -%}
    {%- set dt = modules.datetime -%}
    {%- set parsed = dt.datetime.fromisoformat(text | string | replace('Z', '+00:00')) -%}
    {%- if parsed.tzinfo is not none -%}
        {%- set parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=none) -%}
    {%- endif -%}
    {{ return(parsed) }}
{%- endmacro %}

{% macro window(before_hours=0, after_hours=0, whole_days=false, whole_hours=false) -%}
    {%- set dt = modules.datetime -%}
    {%- set lo = _utc(var('min_date')) - dt.timedelta(hours=before_hours) -%}
    {%- set hi = _utc(var('max_date')) + dt.timedelta(hours=after_hours) -%}
    {%- if hi <= lo -%}
        {{ exceptions.raise_compiler_error("empty window: min_date " ~ var('min_date') ~ " must be before max_date " ~ var('max_date')) }}
    {%- endif -%}
    {%- if whole_hours -%}
        {%- set lo = lo.replace(minute=0, second=0, microsecond=0) -%}
        {%- set hi_floor = hi.replace(minute=0, second=0, microsecond=0) -%}
        {%- set hi = hi_floor if hi == hi_floor else hi_floor + dt.timedelta(hours=1) -%}
    {%- endif -%}
    {%- if whole_days -%}
        {%- set lo = lo.replace(hour=0, minute=0, second=0, microsecond=0) -%}
        {%- set hi_floor = hi.replace(hour=0, minute=0, second=0, microsecond=0) -%}
        {%- set hi = hi_floor if hi == hi_floor else hi_floor + dt.timedelta(days=1) -%}
    {%- endif -%}
    {{ return({'lo': lo, 'hi': hi}) }}
{%- endmacro %}

{% macro ts(value) -%}
    TIMESTAMP '{{ value.strftime("%Y-%m-%d %H:%M:%S") }}'
{%- endmacro %}

{#- Rows of the window: prunes lake files by their `event_hour=` folder, then filters the time. -#}
{% macro in_window(w, ts_column='event_ts', hour_column='event_hour') -%}
    {%- set dt = modules.datetime -%}
    {%- set hi_hour = w.hi.replace(minute=0, second=0, microsecond=0) -%}
    {%- set hi_hour = hi_hour if hi_hour == w.hi else hi_hour + dt.timedelta(hours=1) -%}
    {%- set hour_format = lake().hour_format -%}
    ({{ hour_column }} >= '{{ w.lo.strftime(hour_format) }}' and {{ hour_column }} < '{{ hi_hour.strftime(hour_format) }}'
     and {{ ts_column }} >= {{ ts(w.lo) }} and {{ ts_column }} < {{ ts(w.hi) }})
{%- endmacro %}
