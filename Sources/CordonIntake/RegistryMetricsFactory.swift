import CoreMetrics
import Prometheus

/// A swift-metrics factory that makes every handler on one `PrometheusCollectorRegistry`,
/// with the HELP text and histogram buckets declared for the metric's name.
///
/// swift-prometheus's own `PrometheusMetricsFactory` registers its metrics without HELP
/// text, and the registry stops the process when one name is registered with two different
/// HELP texts, so the texts cannot be added beside it: this factory gives them on every
/// registration instead. It is bound to the registry it is given and is never bootstrapped
/// as `MetricsSystem`'s global factory, so that several runners in one process (the tests)
/// keep separate counts.
struct RegistryMetricsFactory: MetricsFactory {
    /// What the exposition says about a metric besides its samples.
    struct Family: Sendable {
        var help: String
        /// Upper bounds of a histogram's buckets, in the recorded unit (seconds for a
        /// timer); unused by counters and gauges.
        var buckets: [Double] = []
    }

    let registry: PrometheusCollectorRegistry
    /// By metric name. A name missing here gets no HELP line and no buckets.
    let families: [String: Family]

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: families[label]?.help ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    /// A gauge, or a histogram when `aggregate`.
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: families[label]?.buckets ?? [])
    }

    /// A histogram whose bounds are the family's seconds, rounded to the nanosecond (timers
    /// record nanoseconds), so that `le` reads `0.1` rather than the binary double's digits.
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = (families[label]?.buckets ?? []).map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        return registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge {
            registry.unregisterGauge(gauge)
        } else if let histogram = handler as? ValueHistogram {
            registry.unregisterValueHistogram(histogram)
        }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
