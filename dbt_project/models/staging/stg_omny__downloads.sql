-- Omny download events, one row per deduplicated download. The raw IP never leaves this model:
-- it only feeds `listener_key`, a hash of IP and user agent.
select
    event_id as download_id,
    event_ts as downloaded_at,
    event_hour,
    program_id,
    program_name,
    network_id,
    network_name,
    clip_id,
    clip_title,
    clip_audio_duration_seconds,
    playlist_id,
    playlist_title,
    coalesce(download_device_type, 'Unknown') as device_type,
    download_os_family as os_family,
    download_user_agent_family as user_agent_family,
    download_source,
    md5(coalesce(download_ip_address, '') || '|' || coalesce(download_raw_user_agent, '')) as listener_key,
    geo_country_iso_code as country_code,
    geo_country as country,
    geo_state as region,
    geo_city as city,
    arrival_hour
from {{ lake_events('omny') }}
