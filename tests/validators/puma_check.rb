# Usage: ruby puma_check.rb PUMA_RB
# Loads the puma DSL file without starting a server (Puma 5.6 API:
# Puma::Configuration.new(user_options, default_options).load with
# default_options[:config_files]), clamps defaults, checks every bind URI,
# and prints the resulting capacity settings as `key = value` lines.
require "puma"
require "puma/configuration"
require "uri"

path = ARGV.fetch(0)
begin
  conf = Puma::Configuration.new({}, { config_files: [path] })
  conf.load
  conf.clamp
rescue Exception => e # rubocop:disable Lint/RescueException
  msg = e.is_a?(NoMethodError) ? "undefined method `#{e.name}' in the puma DSL" : e.message.to_s[0, 300]
  warn "#{e.class}: #{msg}"
  warn e.backtrace.select { |l| l.include?(path) }.first(3).join("\n")
  exit 1
end
o = conf.options
errors = []
Array(o[:binds]).each do |b|
  u = URI.parse(b) rescue nil
  if u.nil? || !%w[tcp ssl unix].include?(u.scheme)
    errors << "invalid bind #{b.inspect} (expected tcp://HOST:PORT, ssl://HOST:PORT?... or unix://PATH)"
  elsif u.scheme != "unix" && (u.port.nil? || !(1..65535).cover?(u.port))
    errors << "invalid port in bind #{b.inspect}"
  end
end
%i[workers min_threads max_threads].each do |k|
  errors << "#{k} must be an Integer, got #{o[k].inspect}" unless o[k].is_a?(Integer)
end
if o[:min_threads].is_a?(Integer) && o[:max_threads].is_a?(Integer) && o[:min_threads] > o[:max_threads]
  errors << "min_threads (#{o[:min_threads]}) > max_threads (#{o[:max_threads]})"
end
unless errors.empty?
  errors.each { |e| warn "fail: #{e}" }
  exit 1
end
%i[workers min_threads max_threads binds preload_app worker_timeout worker_boot_timeout
   worker_shutdown_timeout persistent_timeout first_data_timeout environment].each do |k|
  puts "#{k} = #{o[k].inspect}"
end
