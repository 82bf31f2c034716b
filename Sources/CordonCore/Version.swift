public enum Cordon { public static let version = "0.3.0-dev" }
