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
        {%- set hours = _window_hours({'lo': lo, 'hi': hi}) -%}
        {%- set lo, hi = hours.lo, hours.hi -%}
    {%- endif -%}
    {%- if whole_days -%}
        {%- set lo = lo.replace(hour=0, minute=0, second=0, microsecond=0) -%}
        {%- set hi_floor = hi.replace(hour=0, minute=0, second=0, microsecond=0) -%}
        {%- set hi = hi_floor if hi == hi_floor else hi_floor + dt.timedelta(days=1) -%}
    {%- endif -%}
    {{ return({'lo': lo, 'hi': hi}) }}
{%- endmacro %}

{#- Window w widened to whole hours: {lo, hi}. -#}
{% macro _window_hours(w) -%}
    {%- set dt = modules.datetime -%}
    {%- set lo = w.lo.replace(minute=0, second=0, microsecond=0) -%}
    {%- set hi = w.hi.replace(minute=0, second=0, microsecond=0) -%}
    {%- set hi = hi if hi == w.hi else hi + dt.timedelta(hours=1) -%}
    {{ return({'lo': lo, 'hi': hi}) }}
{%- endmacro %}

{% macro ts(value) -%}
    TIMESTAMP '{{ value.strftime("%Y-%m-%d %H:%M:%S") }}'
{%- endmacro %}

{#- Rows of the window: prunes lake files by their `event_hour=` folder, then filters the time. -#}
{% macro in_window(w, ts_column='event_ts', hour_column='event_hour') -%}
    {%- set hours = _window_hours(w) -%}
    {%- set hour_format = lake().hour_format -%}
    ({{ hour_column }} >= '{{ hours.lo.strftime(hour_format) }}' and {{ hour_column }} < '{{ hours.hi.strftime(hour_format) }}'
     and {{ ts_column }} >= {{ ts(w.lo) }} and {{ ts_column }} < {{ ts(w.hi) }})
{%- endmacro %}
