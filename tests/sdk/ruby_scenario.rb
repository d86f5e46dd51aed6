# The new-user scenario of the ingest issue, run with the official Ruby SDK (Debian's
# ruby-sentry-ruby).
#
# Captures the same exception from one line twice with different values, an exception
# rescued at the top of a job, and a message, with tags and a user on the scope. Prints each
# event id, one per line.

require "logger"
require "sentry-ruby"

Sentry.init do |config|
  config.dsn = ENV.fetch("FAULTLINE_DSN")
  config.release = "checkout@1.4.2"
  config.environment = "staging"
  config.server_name = "checkout-host-1"
  # Send in this thread: the ids printed below are then stored or the script fails.
  config.background_worker_threads = 0
  # Its log goes to stderr: stdout is the event ids.
  config.logger = Logger.new($stderr)
end
Sentry.set_tags(component: "payments")
Sentry.set_user(id: "user-42", email: "buyer@example.com")

def find_order(id)
  raise ArgumentError, "order #{id} not found"
end

def lookup_order(id)
  find_order(id)
rescue ArgumentError => e
  Sentry.capture_exception(e)
end

def apply_discount(total, parts)
  total / parts
end

def run_job
  apply_discount(100, 0)
  nil
rescue ZeroDivisionError => e
  Sentry.capture_exception(e)
end

events = [
  lookup_order(1001),
  lookup_order(2002),
  run_job,
  Sentry.capture_message("Payment declined for order 1001"),
]
abort "an event was not sent" if events.any?(&:nil?)
events.each { |event| puts event.event_id }
