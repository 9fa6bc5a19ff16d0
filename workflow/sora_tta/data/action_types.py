"""UCF-101's five action types and the class-to-type list of the dataset's paper.

Soomro, Zamir and Shah (2012), "UCF101: A Dataset of 101 Human Actions Classes From Videos
in The Wild", CRCV-TR-12-01, section 2 and figure 2 (colour-coded by type), also listed on
the dataset's page (crcv.ucf.edu/data/UCF101.php). Class names are spelled as in
``classInd.txt``; lookups ignore case (the official files spell ``HandstandPushups`` both
ways). Every one of the 101 classes belongs to exactly one type (a test checks this
against :data:`sora_tta.data.ucf101.CLASS_NAMES`). The synthetic demo set reuses the first
real class names, so its classes get their real types.
"""

from __future__ import annotations

HUMAN_OBJECT = "Human-Object Interaction"
BODY_MOTION = "Body-Motion Only"
HUMAN_HUMAN = "Human-Human Interaction"
INSTRUMENTS = "Playing Musical Instruments"
SPORTS = "Sports"

#: The five types in the paper's order, each with its classes (20 + 16 + 5 + 10 + 50).
ACTION_TYPES: dict[str, tuple[str, ...]] = {
    HUMAN_OBJECT: (
        "ApplyEyeMakeup", "ApplyLipstick", "BlowDryHair", "BrushingTeeth", "CuttingInKitchen",
        "Hammering", "HulaHoop", "JugglingBalls", "JumpRope", "Knitting", "Mixing",
        "MoppingFloor", "Nunchucks", "PizzaTossing", "ShavingBeard", "SkateBoarding",
        "SoccerJuggling", "Typing", "WritingOnBoard", "YoYo",
    ),
    BODY_MOTION: (
        "BabyCrawling", "BlowingCandles", "BodyWeightSquats", "HandstandPushups",
        "HandstandWalking", "JumpingJack", "Lunges", "PullUps", "PushUps",
        "RockClimbingIndoor", "RopeClimbing", "Swing", "TaiChi", "TrampolineJumping",
        "WalkingWithDog", "WallPushups",
    ),
    HUMAN_HUMAN: ("BandMarching", "Haircut", "HeadMassage", "MilitaryParade", "SalsaSpin"),
    INSTRUMENTS: (
        "Drumming", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute",
        "PlayingGuitar", "PlayingPiano", "PlayingSitar", "PlayingTabla", "PlayingViolin",
    ),
    SPORTS: (
        "Archery", "BalanceBeam", "BaseballPitch", "Basketball", "BasketballDunk",
        "BenchPress", "Biking", "Billiards", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag",
        "BreastStroke", "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot",
        "Diving", "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch",
        "FrontCrawl", "GolfSwing", "HammerThrow", "HighJump", "HorseRace", "HorseRiding",
        "IceDancing", "JavelinThrow", "Kayaking", "LongJump", "ParallelBars", "PoleVault",
        "PommelHorse", "Punch", "Rafting", "Rowing", "Shotput", "Skiing", "Skijet",
        "SkyDiving", "SoccerPenalty", "StillRings", "SumoWrestling", "Surfing",
        "TableTennisShot", "TennisSwing", "ThrowDiscus", "UnevenBars", "VolleyballSpiking",
    ),
}  # fmt: skip

#: Label of classes that are not UCF-101 classes (never expected in a study).
UNKNOWN_TYPE = "unknown"

_TYPE_OF: dict[str, str] = {
    name.lower(): kind for kind, names in ACTION_TYPES.items() for name in names
}


def action_type(class_name: str) -> str:
    """The action type of a UCF-101 class (case-insensitive); :data:`UNKNOWN_TYPE` if none."""
    return _TYPE_OF.get(class_name.lower(), UNKNOWN_TYPE)
