{#- Per UTC day × program × clip × country × region × city: deduplicated downloads, distinct
    listeners (hash of IP + user agent) and the device-type split. Downloads without Geo count
    under the explicit 'Unknown' location. A window is widened to whole days and recomputed. -#}
{%- set days = window(whole_days=true) -%}
{{ config(
    incremental_strategy='replace',
    replace_where="download_date >= {lo}::date and download_date < {hi}::date",
    replace_window={"whole_days": true},
) }}

select
    downloaded_at::date as download_date,
    program_id,
    clip_id,
    coalesce(country_code, 'ZZ') as country_code,
    coalesce(country, 'Unknown') as country,
    coalesce(region, 'Unknown') as region,
    coalesce(city, 'Unknown') as city,
    count(distinct download_id) as downloads,
    count(distinct listener_key) as listeners,
    count(distinct download_id) filter (where device_type = 'Mobile') as downloads_mobile,
    count(distinct download_id) filter (where device_type = 'Desktop') as downloads_desktop,
    count(distinct download_id) filter (where device_type = 'Tablet') as downloads_tablet,
    count(distinct download_id) filter (where device_type not in ('Mobile', 'Desktop', 'Tablet')) as downloads_other_devices
from {{ staging('stg_omny__downloads', days) }}
where {{ in_window(days, ts_column='downloaded_at') }}
group by all
