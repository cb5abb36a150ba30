"""Small word lists and fact tables behind the built-in task generators (`builtin_tasks`).

Kept apart from the generators so the tables can grow without touching generation logic. Every entry
is unambiguous on purpose: a reply is scored by exact match, so a question with two right answers
would punish a correct model.
"""

from __future__ import annotations

from typing import NamedTuple


class Country(NamedTuple):
    """One row of the world-facts table; `language` is None where no single language is official."""

    name: str
    capital: str
    continent: str
    currency: str
    language: str | None


COUNTRIES: tuple[Country, ...] = (
    Country("France", "Paris", "Europe", "euro", "French"),
    Country("Germany", "Berlin", "Europe", "euro", "German"),
    Country("Italy", "Rome", "Europe", "euro", "Italian"),
    Country("Spain", "Madrid", "Europe", "euro", "Spanish"),
    Country("Portugal", "Lisbon", "Europe", "euro", "Portuguese"),
    Country("Greece", "Athens", "Europe", "euro", "Greek"),
    Country("Austria", "Vienna", "Europe", "euro", "German"),
    Country("Poland", "Warsaw", "Europe", "zloty", "Polish"),
    Country("Sweden", "Stockholm", "Europe", "krona", "Swedish"),
    Country("Norway", "Oslo", "Europe", "krone", "Norwegian"),
    Country("Denmark", "Copenhagen", "Europe", "krone", "Danish"),
    Country("Hungary", "Budapest", "Europe", "forint", "Hungarian"),
    Country("Ireland", "Dublin", "Europe", "euro", None),
    Country("Switzerland", "Bern", "Europe", "franc", None),
    Country("Japan", "Tokyo", "Asia", "yen", "Japanese"),
    Country("Thailand", "Bangkok", "Asia", "baht", "Thai"),
    Country("Vietnam", "Hanoi", "Asia", "dong", "Vietnamese"),
    Country("South Korea", "Seoul", "Asia", "won", "Korean"),
    Country("Indonesia", "Jakarta", "Asia", "rupiah", "Indonesian"),
    Country("Saudi Arabia", "Riyadh", "Asia", "riyal", "Arabic"),
    Country("Iran", "Tehran", "Asia", "rial", "Persian"),
    Country("Nepal", "Kathmandu", "Asia", "rupee", "Nepali"),
    Country("Mongolia", "Ulaanbaatar", "Asia", "tugrik", "Mongolian"),
    Country("Pakistan", "Islamabad", "Asia", "rupee", None),
    Country("Egypt", "Cairo", "Africa", "pound", "Arabic"),
    Country("Morocco", "Rabat", "Africa", "dirham", None),
    Country("Ghana", "Accra", "Africa", "cedi", "English"),
    Country("Nigeria", "Abuja", "Africa", "naira", "English"),
    Country("Kenya", "Nairobi", "Africa", "shilling", None),
    Country("Ethiopia", "Addis Ababa", "Africa", "birr", None),
    Country("Brazil", "Brasilia", "South America", "real", "Portuguese"),
    Country("Argentina", "Buenos Aires", "South America", "peso", "Spanish"),
    Country("Peru", "Lima", "South America", "sol", "Spanish"),
    Country("Chile", "Santiago", "South America", "peso", "Spanish"),
    Country("Colombia", "Bogota", "South America", "peso", "Spanish"),
    Country("Mexico", "Mexico City", "North America", "peso", "Spanish"),
    Country("Cuba", "Havana", "North America", "peso", "Spanish"),
    Country("Canada", "Ottawa", "North America", "dollar", None),
    Country("Australia", "Canberra", "Oceania", "dollar", "English"),
    Country("New Zealand", "Wellington", "Oceania", "dollar", None),
    Country("Fiji", "Suva", "Oceania", "dollar", None),
)

# Word lists stay several to a line.
# fmt: off
# (word, its antonym): asked only in this direction, since several right-hand words have two opposites.
ANTONYMS: tuple[tuple[str, str], ...] = (
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("open", "closed"),
    ("early", "late"), ("rich", "poor"), ("full", "empty"), ("young", "old"), ("strong", "weak"),
    ("wet", "dry"), ("loud", "quiet"), ("high", "low"), ("long", "short"), ("thick", "thin"),
    ("clean", "dirty"), ("easy", "difficult"), ("heavy", "light"), ("true", "false"), ("win", "lose"),
    ("buy", "sell"), ("push", "pull"), ("inside", "outside"), ("day", "night"), ("north", "south"),
    ("east", "west"), ("love", "hate"), ("cheap", "expensive"), ("deep", "shallow"), ("wide", "narrow"),
    ("safe", "dangerous"), ("smooth", "rough"), ("awake", "asleep"), ("remember", "forget"),
    ("arrive", "depart"), ("question", "answer"), ("above", "below"), ("friend", "enemy"),
    ("always", "never"), ("first", "last"),
)

PLURALS: tuple[tuple[str, str], ...] = (
    ("cat", "cats"), ("box", "boxes"), ("city", "cities"), ("child", "children"), ("mouse", "mice"),
    ("tooth", "teeth"), ("foot", "feet"), ("man", "men"), ("woman", "women"), ("goose", "geese"),
    ("person", "people"), ("leaf", "leaves"), ("knife", "knives"), ("wolf", "wolves"), ("baby", "babies"),
    ("bus", "buses"), ("church", "churches"), ("dish", "dishes"), ("potato", "potatoes"),
    ("hero", "heroes"), ("sheep", "sheep"), ("deer", "deer"), ("ox", "oxen"), ("bench", "benches"),
    ("story", "stories"), ("party", "parties"), ("key", "keys"), ("toy", "toys"), ("glass", "glasses"),
    ("fox", "foxes"), ("wife", "wives"), ("life", "lives"), ("tomato", "tomatoes"), ("piano", "pianos"),
    ("photo", "photos"), ("book", "books"), ("tree", "trees"), ("house", "houses"), ("horse", "horses"),
    ("lady", "ladies"), ("watch", "watches"), ("half", "halves"),
)

PAST_TENSES: tuple[tuple[str, str], ...] = (
    ("go", "went"), ("eat", "ate"), ("see", "saw"), ("run", "ran"), ("write", "wrote"), ("take", "took"),
    ("give", "gave"), ("sing", "sang"), ("swim", "swam"), ("drink", "drank"), ("buy", "bought"),
    ("think", "thought"), ("bring", "brought"), ("teach", "taught"), ("catch", "caught"), ("fly", "flew"),
    ("know", "knew"), ("grow", "grew"), ("draw", "drew"), ("speak", "spoke"), ("break", "broke"),
    ("choose", "chose"), ("drive", "drove"), ("ride", "rode"), ("begin", "began"), ("sit", "sat"),
    ("stand", "stood"), ("sleep", "slept"), ("keep", "kept"), ("feel", "felt"), ("leave", "left"),
    ("meet", "met"), ("lose", "lost"), ("send", "sent"), ("build", "built"), ("find", "found"),
    ("tell", "told"), ("sell", "sold"), ("make", "made"), ("say", "said"), ("pay", "paid"),
    ("walk", "walked"), ("jump", "jumped"), ("play", "played"), ("cry", "cried"), ("stop", "stopped"),
    ("plan", "planned"), ("try", "tried"), ("dance", "danced"), ("laugh", "laughed"), ("cook", "cooked"),
)

# (adjective, comparative, superlative)
DEGREES: tuple[tuple[str, str, str], ...] = (
    ("big", "bigger", "biggest"), ("small", "smaller", "smallest"), ("fast", "faster", "fastest"),
    ("tall", "taller", "tallest"), ("happy", "happier", "happiest"), ("good", "better", "best"),
    ("bad", "worse", "worst"), ("hot", "hotter", "hottest"), ("thin", "thinner", "thinnest"),
    ("easy", "easier", "easiest"), ("busy", "busier", "busiest"), ("large", "larger", "largest"),
    ("nice", "nicer", "nicest"), ("safe", "safer", "safest"), ("strong", "stronger", "strongest"),
    ("young", "younger", "youngest"), ("cold", "colder", "coldest"), ("warm", "warmer", "warmest"),
    ("long", "longer", "longest"), ("short", "shorter", "shortest"), ("bright", "brighter", "brightest"),
    ("dark", "darker", "darkest"), ("slow", "slower", "slowest"), ("heavy", "heavier", "heaviest"),
    ("funny", "funnier", "funniest"), ("wide", "wider", "widest"), ("quiet", "quieter", "quietest"),
    ("beautiful", "more beautiful", "most beautiful"), ("careful", "more careful", "most careful"),
    ("important", "more important", "most important"), ("famous", "more famous", "most famous"),
)

# Plain lowercase words for the string tasks: letters only, so length and vowel counts are unambiguous.
WORDS: tuple[str, ...] = (
    "apple", "river", "garden", "window", "pencil", "orange", "planet", "silver", "rocket", "forest",
    "butter", "candle", "dragon", "engine", "finger", "guitar", "hammer", "island", "jacket", "kitten",
    "ladder", "marble", "needle", "oyster", "pepper", "rabbit", "saddle", "ticket", "violin", "walnut",
    "yellow", "zipper", "bridge", "cloud", "dream", "eagle", "flame", "grape", "honey", "lemon",
    "music", "night", "ocean", "piano", "queen", "stone", "tiger", "uncle", "voice", "water",
    "banana", "camera", "doctor", "basket", "castle", "summer", "winter", "spring", "market", "letter",
)

FRUITS: tuple[str, ...] = (
    "apple", "pear", "plum", "cherry", "grape", "lemon", "mango", "peach", "kiwi", "lime", "melon", "fig",
)

FIRST_NAMES: tuple[str, ...] = (
    "Maria", "James", "Aisha", "Kenji", "Elena", "Omar", "Sofia", "Lucas", "Priya", "Daniel", "Hannah",
    "Mateo", "Chloe", "Ivan", "Grace", "Samuel", "Leila", "Noah", "Amara", "Felix", "Nina", "Oscar",
)

LAST_NAMES: tuple[str, ...] = (
    "Lopez", "Smith", "Khan", "Tanaka", "Novak", "Haddad", "Rossi", "Martin", "Patel", "Berg", "Okafor",
    "Silva", "Dubois", "Petrov", "Walsh", "Cohen", "Moreau", "Fischer", "Mensah", "Larsen", "Reyes",
)

# Cities that are not the capitals in COUNTRIES, so the test-only city extraction cannot lean on facts.
CITIES: tuple[str, ...] = (
    "Chicago", "Lyon", "Osaka", "Munich", "Seville", "Toronto", "Glasgow", "Porto", "Krakow", "Bergen",
    "Milan", "Marseille", "Sydney", "Auckland", "Mumbai", "Istanbul", "Boston", "Denver", "Valencia",
    "Hamburg", "Naples", "Perth", "Busan", "Cork", "Geneva", "Zurich",
)

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "mail.test", "post.example.net")

WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)

POSITIVE_ADJECTIVES: tuple[str, ...] = (
    "wonderful", "superb", "delightful", "excellent", "charming", "brilliant", "lovely", "fantastic",
)
NEGATIVE_ADJECTIVES: tuple[str, ...] = (
    "awful", "dull", "terrible", "disappointing", "boring", "dreadful", "poor", "horrible",
)
# fmt: on

# Per review domain: the things a reviewer comments on, and closing remarks by polarity.
REVIEW_ASPECTS: dict[str, tuple[str, ...]] = {
    "movie": ("plot", "acting", "soundtrack", "ending", "dialogue", "cast", "pacing"),
    "restaurant": ("food", "service", "dessert", "soup", "waiter", "menu", "pasta"),
    "hotel": ("room", "staff", "bed", "breakfast", "pool", "view", "lobby"),
    "product": ("battery", "screen", "design", "charger", "build quality", "speaker", "case"),
}
REVIEW_CLOSERS: dict[str, dict[str, tuple[str, ...]]] = {
    "movie": {
        "positive": ("I would watch it again.", "Go see it!", "Two hours well spent."),
        "negative": ("I walked out early.", "Skip this one.", "What a waste of a night."),
    },
    "restaurant": {
        "positive": ("We will be back soon.", "Book a table!", "Worth every penny."),
        "negative": ("Never eating there again.", "Avoid this place.", "We left hungry."),
    },
    "hotel": {
        "positive": ("I would stay here again.", "A perfect trip.", "Highly recommended."),
        "negative": ("Never staying here again.", "Book elsewhere.", "Ruined our holiday."),
    },
    "product": {
        "positive": ("I would buy it again.", "Great value.", "Five stars from me."),
        "negative": ("I sent it back.", "Save your money.", "One star from me."),
    },
}
